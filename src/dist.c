/* dist.c - PLACEHOLDER for the distributed layer (the only file that includes mpi.h). */
#include "common.h"
