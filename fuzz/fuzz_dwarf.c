/*
 * The DWARF index (lib/src/program/): a mutated small executable opened
 * with tscope_program_open (ELF, sections, symbols, build-id,
 * .gnu_debuglink), indexed (every unit's DIEs: types, functions, variables,
 * line tables), then looked up: types by name, their members, the function
 * at each symbol's address.
 */
#include <stdlib.h>
#include <string.h>

#include "program/program.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* no network, no system debug files: only the input is read; no
	 * index cache (each input would rewrite one, or load another's) */
	unsetenv("DEBUGINFOD_URLS");
	setenv("TASKSCOPE_CACHE", "0", 1);
	return 0;
}

static unsigned sink;

static void eat(struct tscope_error *err)
{
	if (err) {
		sink += strlen(tscope_error_message(err));
		tscope_error_destroy(err);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tscope_program *prog;
	struct tscope_error *err = tscope_program_open(fuzz_input_file(data, size), &prog);
	if (err) {
		eat(err);
		return 0;
	}
	eat(tscope_program_set_debug_dirs(prog, ""));
	err = tscope_program_index(prog);
	if (err) {
		eat(err);
		tscope_program_destroy(prog);
		return 0;
	}
	static const char *const types[] = {
		"point", "shape", "node", "union word", "seed::Point", "seed::Shape",
		"seed::Node", "core::option::Option<u32>", "seed::run::{async_fn_env#0}",
	};
	static const char *const members[] = {"x", "y", "next", "kind", "Some.0", "__state", "w"};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		uint64_t off, moff;
		err = tscope_program_find_type(prog, types[i], &off);
		if (err) {
			eat(err);
			continue;
		}
		for (size_t j = 0; j < sizeof(members) / sizeof(members[0]); j++)
			if (!(err = tscope_program_member_offset(prog, off, members[j], &moff)))
				sink += (unsigned)moff;
			else
				eat(err);
	}
	for (size_t i = 0; i < prog->nsyms && i < 512; i++) {
		const char *name;
		uint64_t die;
		if (!(err = tscope_program_function_at(prog, prog->syms[i].value, &name, &die)))
			sink += strlen(name);
		else
			eat(err);
	}
	tscope_program_destroy(prog);
	return 0;
}
