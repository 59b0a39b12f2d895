/*
 * decode_core EXE CORE: decode everything the library can (tasks, frames,
 * locals, graph, diagnoses) and print the size of the JSON document.  Run
 * under AddressSanitizer/UBSan/LeakSanitizer by `./dev sanitize` over every
 * fixture core: memory errors and leaks fail it.
 */
#include <stdio.h>
#include <string.h>

#include "taskscope.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: decode_core EXE CORE\n");
		return 2;
	}
	struct tscope_program *prog = NULL;
	struct tscope_target *target = NULL;
	struct tscope_session *session = NULL;
	char *json = NULL;
	int rc = 0;
	struct tscope_error *err = tscope_program_open(argv[1], &prog);
	if (!err)
		err = tscope_target_open_core(argv[2], &target);
	if (!err)
		err = tscope_session_create(prog, target, &session);
	if (!err)
		err = tscope_session_tasks_json(session,
						TSCOPE_JSON_FRAMES | TSCOPE_JSON_LOCALS |
							TSCOPE_JSON_GRAPH,
						&json);
	if (err) {
		/* A clean error is a result too (no_tokio, truncated...). */
		printf("error (%d): %s\n", tscope_error_code(err),
		       tscope_error_message(err));
		tscope_error_destroy(err);
	} else {
		printf("%zu bytes of JSON\n", strlen(json));
	}
	tscope_free(json);
	tscope_session_destroy(session);
	tscope_target_destroy(target);
	tscope_program_destroy(prog);
	return rc;
}
