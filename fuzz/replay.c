/*
 * A fuzz target's entry point without libFuzzer: replay FILE... (or every
 * file of each DIR...) through LLVMFuzzerTestOneInput, as ctest and
 * `./dev test` do with fuzz/regress/<target>/.  Built with UBSan (every
 * finding fatal) by the default build, so a regression input fails it the
 * way it failed the fuzzer, short of ASan.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return 1;
	}
	size_t cap = 1 << 16, n = 0, r;
	unsigned char *buf = malloc(cap);
	while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			unsigned char *b = realloc(buf, cap *= 2);
			if (!b) {
				free(buf);
				buf = NULL;
			}
			buf = b;
		}
	}
	fclose(f);
	if (!buf) {
		fprintf(stderr, "%s: out of memory\n", path);
		return 1;
	}
	fprintf(stderr, "replay %s (%zu bytes)\n", path, n);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	LLVMFuzzerInitialize(&argc, &argv);
	int fail = 0, files = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			perror(argv[i]);
			fail = 1;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			fail |= run_file(argv[i]);
			files++;
			continue;
		}
		DIR *d = opendir(argv[i]);
		struct dirent *de;
		char **names = NULL;
		size_t nn = 0;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.' || !strcmp(de->d_name, "README.md"))
				continue;
			char **m = realloc(names, (nn + 1) * sizeof(*names));
			if (!m)
				break;
			names = m;
			if (asprintf(&names[nn], "%s/%s", argv[i], de->d_name) >= 0)
				nn++;
		}
		if (d)
			closedir(d);
		if (nn)
			qsort(names, nn, sizeof(*names), cmp);
		for (size_t k = 0; k < nn; k++) {
			fail |= run_file(names[k]);
			files++;
			free(names[k]);
		}
		free(names);
	}
	fprintf(stderr, "replayed %d input%s\n", files, files == 1 ? "" : "s");
	return fail;
}
