# unlearn - distributed SFR-on machine unlearning in C.
#
#   make            build build/unlearn (and build/libunlearn.a)
#   make check      README's test command (what CI runs): `make test`, then the same suite under `make asan`
#   make test       build everything and run the whole test suite (tests/run_tests.sh)
#   make bench      run the benchmarks against PyTorch (bench/run_bench.sh)
#   make asan       build with AddressSanitizer into build-asan/ and run the test suite there
#   make ubsan      the same with UndefinedBehaviorSanitizer into build-ubsan/
#   make demo       the end-to-end Fashion-MNIST demo
#   make clean
#
# Libraries are found with pkg-config; every flag can be overridden from the command line, e.g. on a cluster
# after `module load`:  make MPICC=mpicc HDF5_CFLAGS=-I$HDF5_DIR/include HDF5_LIBS="-L$HDF5_DIR/lib -lhdf5"
# HDF5_PKG picks the pkg-config name (hdf5-openmpi, hdf5-serial, hdf5); both builds of HDF5 work.

MPICC   ?= mpicc
CC      := $(MPICC)
PKG_CONFIG ?= pkg-config
HDF5_PKG ?= $(shell $(PKG_CONFIG) --exists hdf5-openmpi && echo hdf5-openmpi || \
                   ($(PKG_CONFIG) --exists hdf5-serial && echo hdf5-serial || echo hdf5))
HDF5_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags $(HDF5_PKG) 2>/dev/null)
HDF5_LIBS   ?= $(shell $(PKG_CONFIG) --libs $(HDF5_PKG) 2>/dev/null)
BLAS_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags openblas 2>/dev/null)
BLAS_LIBS   ?= $(shell $(PKG_CONFIG) --libs openblas 2>/dev/null || echo -lopenblas)
YAML_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags yaml-0.1 2>/dev/null)
YAML_LIBS   ?= $(shell $(PKG_CONFIG) --libs yaml-0.1 2>/dev/null || echo -lyaml)

BUILD   ?= build
OPT     ?= -O2
ARCH    ?= -march=native
WERROR  ?= $(if $(CI),-Werror,)
SANITIZE ?=
CFLAGS  ?= -std=c11 $(OPT) -g $(ARCH) -fopenmp \
           -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes $(WERROR)
ALL_CFLAGS = $(CFLAGS) $(SANITIZE) -Iinclude $(HDF5_CFLAGS) $(BLAS_CFLAGS) $(YAML_CFLAGS)
LDLIBS  = $(HDF5_LIBS) $(BLAS_LIBS) $(YAML_LIBS) -lm
LDFLAGS ?= -fopenmp

# The distributed layer (src/dist.c) is the only file that includes mpi.h. It is compiled twice: with MPI
# for build/unlearn and the MPI tests, and with -DUL_SERIAL for the serial unit tests.
CORE_SRC := $(filter-out src/main.c src/dist.c,$(wildcard src/*.c))
CORE_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(CORE_SRC))
LIB      := $(BUILD)/libunlearn.a
UNIT_TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
MPI_TESTS  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/mpi_*.c))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

.PHONY: all check test bench asan ubsan demo clean deps tests-build
all: $(BUILD)/unlearn

$(BUILD)/obj/%.o: src/%.c $(wildcard include/*.h) | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<
# Provenance baked into every report: git describe and the compile flags.
GIT_DESCRIBE := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/obj/report.o: ALL_CFLAGS += -DUL_GIT_DESCRIBE='"$(GIT_DESCRIBE)"' -DUL_BUILD_FLAGS='"$(strip $(CFLAGS) $(SANITIZE))"'
$(BUILD)/obj/dist_mpi.o: src/dist.c $(wildcard include/*.h) | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<
$(BUILD)/obj/dist_serial.o: src/dist.c $(wildcard include/*.h) | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -DUL_SERIAL -c -o $@ $<
$(LIB): $(CORE_OBJ)
	rm -f $@ && ar rcs $@ $^
$(BUILD)/unlearn: $(BUILD)/obj/main.o $(BUILD)/obj/dist_mpi.o $(LIB)
	$(CC) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_%: tests/test_%.c tests/testutil.h $(BUILD)/obj/dist_serial.o $(LIB) | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(BUILD)/obj/dist_serial.o $(LIB) $(LDLIBS)
$(BUILD)/tests/mpi_%: tests/mpi_%.c tests/testutil.h $(BUILD)/obj/dist_mpi.o $(LIB) | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(BUILD)/obj/dist_mpi.o $(LIB) $(LDLIBS)
$(BUILD)/bench/%: bench/%.c $(BUILD)/obj/dist_serial.o $(LIB) | $(BUILD)/bench
	$(CC) $(ALL_CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(BUILD)/obj/dist_serial.o $(LIB) $(LDLIBS)

$(BUILD)/obj $(BUILD)/tests $(BUILD)/bench:
	mkdir -p $@

tests-build: $(BUILD)/unlearn $(UNIT_TESTS) $(MPI_TESTS)

# The test suite: installs what is missing (scripts/install-deps.sh), regenerates the PyTorch fixtures, runs
# every unit, MPI and command-line test, and ends with "N passed, M failed".
test: deps tests-build
	BUILD=$(BUILD) tests/run_tests.sh

check:
	$(MAKE) test
	$(MAKE) asan

bench: deps $(BUILD)/unlearn $(BENCH_BINS)
	BUILD=$(BUILD) bench/run_bench.sh

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SANITIZE="-fsanitize=address -fno-omit-frame-pointer" test
ubsan:
	$(MAKE) BUILD=build-ubsan OPT=-O1 SANITIZE="-fsanitize=undefined -fno-sanitize-recover=undefined" test

# The build runs after deps (which may install the compilers and libraries) and on every core: a fresh clone's
# serial build took 19 s of the demo's 10-minute budget on 2 cores.
demo: deps
	$(MAKE) -j$$(nproc) $(BUILD)/unlearn
	BUILD=$(BUILD) scripts/demo.sh

deps:
	@scripts/install-deps.sh --if-missing

clean:
	rm -rf build build-asan build-ubsan
