/*
 * The core and ELF reader (lib/src/target/): a mutated core file opened
 * with tscope_target_open_core (ELF header, program headers, notes:
 * NT_PRSTATUS, NT_SIGINFO, NT_AUXV, NT_FILE), then its threads, segments
 * and mappings walked and read through tscope_target_read (segment data,
 * the pages a core left out read from the files NT_FILE names, if they
 * are the files that were mapped).
 */
#include <stdlib.h>
#include <string.h>

#include "target/target.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static unsigned sink;

static void probe(struct tscope_target *t, uint64_t addr, uint64_t len)
{
	unsigned char buf[256];
	if (len > sizeof(buf))
		len = sizeof(buf);
	struct tscope_error *err = tscope_target_read(t, addr, buf, len);
	if (err) {
		sink += strlen(tscope_error_message(err));
		tscope_error_destroy(err);
		return;
	}
	for (uint64_t i = 0; i < len; i++)
		sink += buf[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tscope_target *t;
	struct tscope_error *err = tscope_target_open_core(fuzz_input_file(data, size), &t);
	if (err) {
		sink += strlen(tscope_error_message(err));
		tscope_error_destroy(err);
		return 0;
	}
	size_t nth;
	struct tscope_thread *th = target_threads(t, &nth);
	for (size_t i = 0; i < nth && i < 64; i++) {
		probe(t, th[i].sp, 64);
		probe(t, th[i].pc, 16);
		probe(t, th[i].fs_base, 8);
	}
	int sig;
	if (target_crash_thread(t, &sig))
		sink += sig;
	uint64_t v, have, want;
	if (target_auxv_entry(t, &v))
		probe(t, v, 16);
	probe(t, target_vdso(t), 64);
	sink += target_core_truncated(t, &have, &want);
	for (size_t i = 0; i < target_num_segments(t) && i < 256; i++) {
		uint64_t va, len;
		uint32_t fl;
		const unsigned char *d;
		if (!target_segment(t, i, &va, &len, &fl, &d))
			continue;
		if (d && len)
			sink += d[0] + d[len - 1];
		probe(t, va, 32);
		if (len > 8)
			probe(t, va + len - 8, 16); /* across the end of the file data */
	}
	/* the pages left out, from the files NT_FILE names */
	for (size_t i = 0; i < target_num_mappings(t) && i < 64; i++) {
		const struct tscope_mapping *m = target_mapping(t, i);
		probe(t, m->start, 64);
		if (m->end > m->start + 4096)
			probe(t, m->end - 4096, 64);
	}
	tscope_target_destroy(t);
	return 0;
}
