/*
 * Baseline for the DWARF index: a plain libdwarf walk over every DIE of
 * .debug_info (what a naive indexer does), timed next to taskscope's index
 * pass on the same binary in the same run.
 *
 *   build/bench/dwarf_walk EXE [REPEAT]
 */
#include <libdwarf/dwarf.h>
#include <libdwarf/libdwarf.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "taskscope.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void handler(Dwarf_Error e, Dwarf_Ptr a)
{
	(void)e;
	(void)a;
}

static unsigned long walk(Dwarf_Debug dbg, Dwarf_Die die)
{
	unsigned long n = 1;
	char *name;
	Dwarf_Half tag;
	dwarf_tag(die, &tag, NULL);
	dwarf_diename(die, &name, NULL);
	Dwarf_Die c;
	if (dwarf_child(die, &c, NULL) != DW_DLV_OK)
		return n;
	for (;;) {
		n += walk(dbg, c);
		Dwarf_Die s;
		int r = dwarf_siblingof_b(dbg, c, 1, &s, NULL);
		dwarf_dealloc_die(c);
		if (r != DW_DLV_OK)
			break;
		c = s;
	}
	return n;
}

static double full_walk(const char *path, unsigned long *dies)
{
	double t0 = now();
	Dwarf_Debug dbg;
	if (dwarf_init_path(path, NULL, 0, DW_DLC_READ, DW_GROUPNUMBER_ANY, handler,
			    NULL, &dbg, NULL, 0, NULL, NULL) != DW_DLV_OK) {
		fprintf(stderr, "dwarf_walk: cannot read DWARF of %s\n", path);
		exit(1);
	}
	*dies = 0;
	Dwarf_Unsigned next;
	while (dwarf_next_cu_header_d(dbg, 1, NULL, NULL, NULL, NULL, NULL, NULL,
				      NULL, NULL, &next, NULL, NULL) == DW_DLV_OK) {
		Dwarf_Die cu;
		if (dwarf_siblingof_b(dbg, NULL, 1, &cu, NULL) != DW_DLV_OK)
			continue;
		*dies += walk(dbg, cu);
		dwarf_dealloc_die(cu);
	}
	dwarf_finish(dbg, NULL);
	return now() - t0;
}

static double index_pass(const char *path)
{
	double t0 = now();
	struct tscope_program *prog;
	struct tscope_error *err = tscope_program_open(path, &prog);
	if (!err)
		err = tscope_program_index(prog);
	if (err) {
		fprintf(stderr, "dwarf_walk: %s\n", tscope_error_message(err));
		exit(1);
	}
	tscope_program_destroy(prog);
	return now() - t0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: dwarf_walk EXE [REPEAT]\n");
		return 2;
	}
	int rep = argc > 2 ? atoi(argv[2]) : 5;
	if (rep < 1 || rep > 100)
		rep = 5;
	double w[100], ix[100];
	unsigned long dies = 0;
	for (int i = 0; i < rep; i++) {
		w[i] = full_walk(argv[1], &dies);
		ix[i] = index_pass(argv[1]);
	}
	qsort(w, rep, sizeof(double), cmp);
	qsort(ix, rep, sizeof(double), cmp);
	printf("%s: %lu DIEs\n", argv[1], dies);
	printf("  baseline: full libdwarf DIE walk  %.3f s  1.00x\n", w[rep / 2]);
	printf("  taskscope index pass              %.3f s  %.2fx baseline\n",
	       ix[rep / 2], ix[rep / 2] / w[rep / 2]);
	return 0;
}
