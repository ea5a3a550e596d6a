/* main.c - PLACEHOLDER command-line entry point. */
#include <stdio.h>
int main(void) { printf("unlearn: not yet\n"); return 0; }
