/*
 * The task walk over mutated memory: a real fixture core
 * ($TASKSCOPE_FUZZ_CORE, of $TASKSCOPE_FUZZ_EXE) whose writable segments
 * (heap, stacks, .data: everything the decoder follows) the input edits,
 * then the whole decode: tscope_session_tasks_json with frames, locals and
 * the graph (executors, await chains, resources, diagnoses).
 *
 * The input is a list of 16-byte edits {u64 where, u64 value}.  Bit 61 of
 * where chooses the word: set, a word within 2 KiB of one of the addresses
 * the unmodified core's decode names (task headers, futures, resources:
 * where a corruption matters), clear, word (where % words) of all the
 * writable data.  The top two bits choose how value is written there:
 *   0  value itself;
 *   1  a pointer: 0, ~0, the word's own address, or another mapped
 *      address (one the decode names, or any word's);
 *   2  a small number (value & 0xff): counts, states, discriminants;
 *   3  one byte (value & 0xff) at byte (where % bytes).
 * The edits are undone after each input.
 */
#include <elf.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "taskscope.h"
#include "fuzz.h"

struct wseg {
	uint64_t offset, len, vaddr; /* file offset, bytes, address */
};

static unsigned char *core;
static size_t core_len;
static struct wseg *segs;
static size_t nsegs;
static uint64_t total; /* writable bytes */
static struct tscope_program *prog;
static int fd = -1;
static char path[64];
static bool verbose; /* $TASKSCOPE_FUZZ_VERBOSE: say what each input gave */
static uint64_t *hot; /* positions (in the writable data) the decode names */
static size_t nhot;

static void die(const char *what, struct tscope_error *err)
{
	fprintf(stderr, "fuzz_tasks: %s%s%s\n", what, err ? ": " : "",
		err ? tscope_error_message(err) : "");
	exit(1);
}

static char *decode(void);

/* The addresses the unmodified core's decode names ("0x..." in its JSON)
 * that are in the writable data: where edits matter most. */
static void find_hot(void)
{
	char *json = decode();
	for (const char *p = json; p && (p = strstr(p, "\"0x")); p++) {
		uint64_t a = strtoull(p + 1, NULL, 16), pos = 0;
		for (size_t i = 0; i < nsegs; pos += segs[i].len, i++) {
			if (a < segs[i].vaddr || a - segs[i].vaddr >= segs[i].len)
				continue;
			uint64_t *n = realloc(hot, (nhot + 1) * sizeof(*hot));
			if (n) {
				hot = n;
				hot[nhot++] = pos + (a - segs[i].vaddr);
			}
			break;
		}
	}
	tscope_free(json);
	if (verbose)
		fprintf(stderr, "fuzz_tasks: %zu addresses in the writable data\n", nhot);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *exe = getenv("TASKSCOPE_FUZZ_EXE"), *cp = getenv("TASKSCOPE_FUZZ_CORE");
	verbose = getenv("TASKSCOPE_FUZZ_VERBOSE") != NULL;
	setenv("TASKSCOPE_CACHE", "0", 1); /* the index is built once anyway */
	if (!exe || !cp)
		die("set TASKSCOPE_FUZZ_EXE and TASKSCOPE_FUZZ_CORE (a fixture's exe and core)", NULL);
	FILE *f = fopen(cp, "rb");
	if (!f || fseek(f, 0, SEEK_END) || (core_len = ftell(f)) < sizeof(Elf64_Ehdr))
		die("cannot read TASKSCOPE_FUZZ_CORE", NULL);
	rewind(f);
	core = malloc(core_len);
	if (!core || fread(core, 1, core_len, f) != core_len)
		die("cannot read TASKSCOPE_FUZZ_CORE", NULL);
	fclose(f);
	Elf64_Ehdr eh;
	memcpy(&eh, core, sizeof(eh));
	segs = calloc(eh.e_phnum + 1, sizeof(*segs));
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (eh.e_phoff + (i + 1) * sizeof(ph) > core_len)
			break;
		memcpy(&ph, core + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_W) || ph.p_filesz < 8 ||
		    ph.p_offset + ph.p_filesz > core_len)
			continue;
		segs[nsegs++] = (struct wseg){ph.p_offset, ph.p_filesz & ~7ull, ph.p_vaddr};
		total += ph.p_filesz & ~7ull;
	}
	if (!total)
		die("the core has no writable segment", NULL);
	/* The executable is read from a private copy: libelf maps it, and a
	 * fixture rebuilt meanwhile (capture rewrites it) would be SIGBUS. */
	FILE *ef = fopen(exe, "rb");
	int efd = memfd_create("taskscope-fuzz-exe", MFD_CLOEXEC);
	char buf[1 << 16], epath[64];
	size_t n;
	if (!ef || efd < 0)
		die("cannot copy TASKSCOPE_FUZZ_EXE", NULL);
	while ((n = fread(buf, 1, sizeof(buf), ef)) > 0)
		if (write(efd, buf, n) != (ssize_t)n)
			die("cannot copy TASKSCOPE_FUZZ_EXE", NULL);
	fclose(ef);
	snprintf(epath, sizeof(epath), "/proc/self/fd/%d", efd);
	struct tscope_error *err = tscope_program_open(epath, &prog);
	if (err || (err = tscope_program_index(prog)))
		die("cannot open TASKSCOPE_FUZZ_EXE", err);
	fd = memfd_create("taskscope-fuzz-core", MFD_CLOEXEC);
	if (fd < 0 || pwrite(fd, core, core_len, 0) != (ssize_t)core_len)
		die("cannot write the core to a memfd", NULL);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	find_hot();
	return 0;
}

/* Byte @pos of the writable data: its file offset and its address. */
static void locate(uint64_t pos, uint64_t *off, uint64_t *addr)
{
	for (size_t i = 0; i < nsegs; i++) {
		if (pos < segs[i].len) {
			*off = segs[i].offset + pos;
			*addr = segs[i].vaddr + pos;
			return;
		}
		pos -= segs[i].len;
	}
	*off = segs[0].offset;
	*addr = segs[0].vaddr;
}

/* The whole decode of the core as the memfd has it now: its JSON (NULL
 * when it failed). */
static char *decode(void)
{
	struct tscope_target *t;
	struct tscope_session *s;
	char *json = NULL;
	struct tscope_error *err = tscope_target_open_core(path, &t);
	if (!err) {
		err = tscope_session_create(prog, t, &s);
		if (!err) {
			tscope_session_set_limits(s, 20000);
			err = tscope_session_tasks_json(
				s, TSCOPE_JSON_FRAMES | TSCOPE_JSON_LOCALS | TSCOPE_JSON_GRAPH, &json);
			if (verbose && json)
				fprintf(stderr, "fuzz_tasks: %zu bytes of JSON\n", strlen(json));
			tscope_session_destroy(s);
		}
		tscope_target_destroy(t);
	}
	if (verbose && err)
		fprintf(stderr, "fuzz_tasks: %s\n", tscope_error_message(err));
	tscope_error_destroy(err);
	return json;
}

#define MAX_EDITS 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t edited[MAX_EDITS][2]; /* file offset, length */
	size_t nedits = 0;
	for (size_t k = 0; k + 16 <= size && nedits < MAX_EDITS; k += 16) {
		uint64_t where, value, off, addr, other, w;
		memcpy(&where, data + k, 8);
		memcpy(&value, data + k + 8, 8);
		unsigned mode = where >> 62;
		uint64_t pos, r = where & ((1ull << 61) - 1);
		if ((where >> 61 & 1) && nhot) {
			uint64_t h = hot[(r >> 12) % nhot], d = r & 0xfff;
			pos = h + d >= 2048 ? h + d - 2048 : 0;
			if (pos >= total)
				pos = total - 1;
		} else {
			pos = r % total;
		}
		if (mode != 3)
			pos = pos / 8 * 8 < total - 7 ? pos / 8 * 8 : total - 8;
		locate(pos, &off, &addr);
		switch (mode) {
		case 0:
			w = value;
			break;
		case 1:
			/* another address: one the decode names, or any word */
			locate(nhot && (value & 4) ? hot[(value >> 3) % nhot] / 8 * 8
						   : ((value >> 3) % (total / 8)) * 8,
			       &other, &w);
			w = (value & 3) == 0 ? 0 : (value & 3) == 1 ? ~0ull
			    : (value & 3) == 2 ? addr : w;
			break;
		case 2:
			w = value & 0xff;
			break;
		default:
			w = value & 0xff;
			break;
		}
		size_t n = mode == 3 ? 1 : 8;
		if (pwrite(fd, &w, n, (off_t)off) != (ssize_t)n)
			abort();
		edited[nedits][0] = off;
		edited[nedits][1] = n;
		nedits++;
	}
	tscope_free(decode());
	for (size_t i = nedits; i-- > 0;)
		if (pwrite(fd, core + edited[i][0], edited[i][1], (off_t)edited[i][0]) !=
		    (ssize_t)edited[i][1])
			abort();
	return 0;
}
