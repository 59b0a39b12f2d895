/*
 * The program stage on this test's own executable (built -g -O0): DWARF
 * type lookup, member offsets against offsetof(), function by address, and
 * a copy without debug info.
 *
 * argv[1]: the objcopy to use (CMake passes CMAKE_OBJCOPY); default
 * "objcopy".
 */
#include <elf.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "check.h"

/* Types and a function this test looks up in its own DWARF. */
struct tscope_test_record {
	uint32_t tag;
	uint64_t counter;
	char label[3];
	double ratio;
	struct tscope_test_record *next;
};

union tscope_test_union {
	uint64_t word;
	unsigned char bytes[8];
};

struct tscope_test_record tscope_test_global_record;
union tscope_test_union tscope_test_global_union;

__attribute__((noinline)) int tscope_test_marker_function(int x)
{
	return x * 3 + (int)tscope_test_global_record.tag;
}

int main(int argc, char **argv);

static uint64_t elf_entry(const char *path)
{
	Elf64_Ehdr eh;
	FILE *f = fopen(path, "rb");
	if (!f || fread(&eh, sizeof(eh), 1, f) != 1) {
		perror(path);
		exit(2);
	}
	fclose(f);
	return eh.e_entry;
}

static void test_types(struct tscope_program *prog)
{
	uint64_t die = 0, off = 0;
	CHECK_OK(tscope_program_index(prog));
	CHECK_OK(tscope_program_find_type(prog, "tscope_test_record", &die));
	CHECK(die != 0, "DIE offset of tscope_test_record is 0");
	if (die) {
		CHECK_OK(tscope_program_member_offset(prog, die, "counter", &off));
		CHECK_U64_EQ(offsetof(struct tscope_test_record, counter), off);
		CHECK_OK(tscope_program_member_offset(prog, die, "ratio", &off));
		CHECK_U64_EQ(offsetof(struct tscope_test_record, ratio), off);
		CHECK_OK(tscope_program_member_offset(prog, die, "next", &off));
		CHECK_U64_EQ(offsetof(struct tscope_test_record, next), off);
		CHECK_ERR(tscope_program_member_offset(prog, die, "no_such_member", &off),
			  TSCOPE_ERROR_NOT_FOUND, "no_such_member");
	}
	uint64_t udie = 0;
	CHECK_OK(tscope_program_find_type(prog, "tscope_test_union", &udie));
	if (udie) {
		CHECK_OK(tscope_program_member_offset(prog, udie, "bytes", &off));
		CHECK_U64_EQ(offsetof(union tscope_test_union, bytes), off);
	}
	CHECK_ERR(tscope_program_find_type(prog, "tscope_test_no_such_type", &die),
		  TSCOPE_ERROR_NOT_FOUND, "tscope_test_no_such_type");
}

static void test_function_at(struct tscope_program *prog, const char *path)
{
	/* Load bias: where the entry point is minus where the file says. */
	uint64_t bias = getauxval(AT_ENTRY) - elf_entry(path);
	uint64_t pc = (uint64_t)(uintptr_t)&tscope_test_marker_function - bias;
	const char *name = NULL;
	uint64_t die = 0;
	CHECK_OK(tscope_program_function_at(prog, pc, &name, &die));
	CHECK_STR_EQ("tscope_test_marker_function", name);
	CHECK(die != 0, "DIE offset of the function is 0");
	/* A few bytes in is still the same function. */
	name = NULL;
	CHECK_OK(tscope_program_function_at(prog, pc + 4, &name, &die));
	CHECK_STR_EQ("tscope_test_marker_function", name);
	name = NULL;
	pc = (uint64_t)(uintptr_t)&main - bias;
	CHECK_OK(tscope_program_function_at(prog, pc, &name, &die));
	CHECK_STR_EQ("main", name);
	/* Address 0 is not in any function. */
	CHECK_ERR(tscope_program_function_at(prog, 0, &name, &die), TSCOPE_ERROR_NOT_FOUND,
		  "0x0");
}

static void test_build_id(struct tscope_program *prog)
{
	const char *id = tscope_program_build_id(prog);
	CHECK(id != NULL, "build-id is NULL");
	if (!id)
		return;
	size_t n = strlen(id);
	/* gcc on Debian links with --build-id (sha1: 40 hex digits). */
	CHECK(n == 0 || (n % 2 == 0 && strspn(id, "0123456789abcdef") == n),
	      "build-id is not lowercase hex: \"%s\"", id);
}

static void test_no_debug_info(const char *self, const char *objcopy)
{
	char dir[] = "/tmp/tscope-test-dwarf-XXXXXX";
	if (!mkdtemp(dir)) {
		perror(dir);
		exit(2);
	}
	char stripped[sizeof(dir) + 32], cmd[2 * PATH_MAX + 64];
	snprintf(stripped, sizeof(stripped), "%s/stripped", dir);
	snprintf(cmd, sizeof(cmd), "'%s' --strip-debug '%s' '%s'", objcopy, self, stripped);
	int rc = system(cmd);
	CHECK(rc == 0, "`%s` failed (status %d)", cmd, rc);
	if (rc == 0) {
		struct tscope_program *prog = NULL;
		CHECK_OK(tscope_program_open(stripped, &prog));
		if (prog) {
			CHECK_ERR(tscope_program_index(prog), TSCOPE_ERROR_NO_DEBUG_INFO,
				  "DWARF");
			/* The failure is remembered, not retried into a
			 * different answer. */
			CHECK_ERR(tscope_program_index(prog), TSCOPE_ERROR_NO_DEBUG_INFO, NULL);
			uint64_t die;
			CHECK_ERR(tscope_program_find_type(prog, "tscope_test_record", &die),
				  TSCOPE_ERROR_NO_DEBUG_INFO, NULL);
			/* The build-id survives --strip-debug. */
			struct tscope_program *orig = NULL;
			CHECK_OK(tscope_program_open(self, &orig));
			if (orig)
				CHECK_STR_EQ(tscope_program_build_id(orig),
					     tscope_program_build_id(prog));
			tscope_program_destroy(orig);
			tscope_program_destroy(prog);
		}
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", dir);
}

static void test_bad_programs(void)
{
	struct tscope_program *prog = NULL;
	CHECK_ERR(tscope_program_open("/nonexistent/program", &prog), TSCOPE_ERROR_OS,
		  "/nonexistent/program");
	CHECK(prog == NULL, "no program returned on error");
	char dir[] = "/tmp/tscope-test-dwarf-XXXXXX";
	if (!mkdtemp(dir)) {
		perror(dir);
		exit(2);
	}
	char path[sizeof(dir) + 16];
	snprintf(path, sizeof(path), "%s/text", dir);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs("not an ELF file, just some text long enough to have a header\n", f);
		fclose(f);
		CHECK_ERR(tscope_program_open(path, &prog), TSCOPE_ERROR_BAD_FORMAT, NULL);
		CHECK(prog == NULL, "no program returned on error");
		unlink(path);
	}
	rmdir(dir);
	tscope_program_destroy(NULL);
}

int main(int argc, char **argv)
{
	const char *objcopy = argc > 1 && argv[1][0] ? argv[1] : "objcopy";
	char self[PATH_MAX];
	if (!realpath("/proc/self/exe", self)) {
		perror("/proc/self/exe");
		return 2;
	}
	/* Keep the types and the function referenced. */
	tscope_test_global_record.tag = (uint32_t)argc;
	tscope_test_global_union.word = (uint64_t)tscope_test_marker_function(argc);

	struct tscope_program *prog = NULL;
	CHECK_OK(tscope_program_open(self, &prog));
	if (!prog)
		return check_report("test_dwarf");
	test_build_id(prog);
	test_types(prog);
	test_function_at(prog, self);
	tscope_program_destroy(prog);

	test_no_debug_info(self, objcopy);
	test_bad_programs();
	return check_report("test_dwarf");
}
