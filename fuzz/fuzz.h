/* Shared by the fuzz targets: the input as a file the library can open. */
#ifndef TSCOPE_FUZZ_H
#define TSCOPE_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A memfd holding @data (reused from one input to the next); its path,
 * /proc/self/fd/N, for the library's path-taking open functions. */
const char *fuzz_input_file(const uint8_t *data, size_t size);

#endif
