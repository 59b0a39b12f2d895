/*
 * decode_core EXE CORE: decode everything the library can (tasks, frames,
 * locals, graph, diagnoses; every thread's frames by the library's own
 * unwinder) and print the size of the JSON documents.  Run
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
		size_t frames = 0, n = tscope_target_num_threads(target);
		for (size_t i = 0; i < n; i++) {
			int tid;
			uint64_t fs, pc;
			char *fj = NULL;
			struct tscope_error *e = tscope_target_thread(target, i, &tid, &fs, &pc);
			if (!e)
				e = tscope_session_thread_frames_json(session, tid, 0, &fj);
			if (e) {
				printf("thread %zu: error (%d): %s\n", i, tscope_error_code(e),
				       tscope_error_message(e));
				tscope_error_destroy(e);
			} else {
				frames += strlen(fj);
			}
			tscope_free(fj);
		}
		printf("%zu threads unwound, %zu bytes of frames\n", n, frames);
	}
	tscope_free(json);
	tscope_session_destroy(session);
	tscope_target_destroy(target);
	tscope_program_destroy(prog);
	return rc;
}
