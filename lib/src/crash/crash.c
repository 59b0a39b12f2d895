/*
 * Crash cores: the thread a core was written for when it died of a fatal
 * signal (its notes), the signal, the task it was polling, the panic
 * message std's panic handler left on its stack, and the panics still
 * unwinding on it (a double panic).  Executor-neutral: the task comes from
 * the model's threads.
 */
#include <elf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash/crash.h"
#include "model/model.h"

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGSEGV: return "SIGSEGV";
	case SIGABRT: return "SIGABRT";
	case SIGBUS: return "SIGBUS";
	case SIGILL: return "SIGILL";
	case SIGFPE: return "SIGFPE";
	case SIGSYS: return "SIGSYS";
	default: return "?";
	}
}

static bool utf8_text(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		if (!k || i + k > n || (c < 0x20 && c != '\n' && c != '\t'))
			return false;
		for (size_t j = 1; j < k; j++)
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
		i += k;
	}
	return n > 0;
}

/* The panic message, from the crashing thread's stack: std's panic
 * handler builds FormatStringPayload { inner: &PanicMessage, string:
 * Option<String> } in its frame, and the panic hook fills `string` with
 * the formatted message before the abort.  std's frames have no
 * variables and its private types no DWARF, so the payload is found by
 * shape: a String (laid out as the program's DWARF says) of printable
 * UTF-8, next to a pointer into the stack (`inner`); the innermost one.
 * NULL if none (a StaticStrPayload of a literal panic! is not found). */
static char *panic_message(struct model *model, uint64_t sp)
{
	struct tscope_session *s = model->s;
	uint64_t type = 0, size = 0;
	struct tval len0, ptr0, cap0;
	if (!val_ok(tscope_program_find_type(s->prog, "alloc::string::String", &type)) ||
	    !val_ok(type_size(s, type, &size)) || size != 24 ||
	    !val_ok(val_find(s, (struct tval){0, type}, "len", 2, &len0)) ||
	    !val_ok(val_find(s, (struct tval){0, type}, "cap", 5, &cap0)) ||
	    (!val_ok(val_find(s, (struct tval){0, type}, "pointer", 8, &ptr0)) &&
	     !val_ok(val_find(s, (struct tval){0, type}, "ptr", 6, &ptr0))))
		return NULL;
	/* the stack above sp, a page at a time, up to 256 KiB */
	enum { PAGE = 4096, MAXSTACK = 256 * 1024 };
	unsigned char *buf = malloc(MAXSTACK);
	size_t have = 0;
	if (!buf)
		return NULL;
	while (have < MAXSTACK) {
		struct tscope_error *err = tscope_target_read(s->target, sp + have, buf + have, PAGE);
		if (err) {
			tscope_error_destroy(err);
			break;
		}
		have += PAGE;
	}
	char *msg = NULL;
	for (size_t o = 8; o + 32 <= have && !msg; o += 8) {
		uint64_t before, after, len, ptr, cap;
		memcpy(&before, buf + o - 8, 8);
		memcpy(&after, buf + o + 24, 8);
		/* `inner` is &PanicMessage { message: &Arguments }: a pointer
		 * into the stack to a pointer into the stack */
		bool next_to_stack = false;
		for (int k = 0; k < 2 && !next_to_stack; k++) {
			uint64_t q = k ? after : before, qq;
			if (q >= sp && q - sp <= have - 8) { /* no wrap-around */
				memcpy(&qq, buf + (q - sp), 8);
				next_to_stack = qq >= sp && qq < sp + have;
			}
		}
		memcpy(&len, buf + o + len0.addr, 8);
		memcpy(&ptr, buf + o + ptr0.addr, 8);
		memcpy(&cap, buf + o + cap0.addr, 8);
		if (!next_to_stack || !len || len > 65536 || cap < len || cap > (1u << 30) ||
		    ptr < 65536 || (ptr >= sp && ptr < sp + have))
			continue;
		unsigned char *text = malloc(len + 1);
		if (!text)
			break;
		if (val_ok(tscope_target_read(s->target, ptr, text, len)) && utf8_text(text, len)) {
			text[len] = '\0';
			msg = (char *)text;
			/* std's own words when a panic cannot unwind (a double
			 * panic): not the program's message, and what is beyond
			 * it is no payload of this panic: no message */
			if (!strncmp(msg, "thread caused non-unwinding panic", 33)) {
				free(msg);
				msg = NULL;
				break;
			}
			/* ...wherever it is on the stack */
			for (size_t o2 = o + 8; o2 + 33 <= have; o2++)
				if (!memcmp(buf + o2, "thread caused non-unwinding panic", 33)) {
					free(msg);
					msg = NULL;
					break;
				}
			if (!msg)
				break;
		} else {
			free(text);
		}
	}
	free(buf);
	return msg;
}

/* The panics still unwinding on the crashing thread (a destructor that
 * panicked during unwinding: a double panic).  panic_unwind boxes each
 * panic as Exception { _uwe: _Unwind_Exception, canary: &CANARY, cause:
 * Box<dyn Any + Send> } (no DWARF: its layout is panic_unwind's repr(C)):
 * the exception class "MOZ\0RUST" at offset 0 (malloc overwrites it when
 * the box is freed), the address of panic_unwind::imp::CANARY at 32, the
 * payload at 40 (data, vtable: drop, size, align).  The unwinder keeps the
 * CFA of the frame that will handle each exception in private_2 (offset
 * 24), on the stack of the thread it runs on: that says whose it is and
 * orders them (the outer panic's handler is the older frame, higher on the
 * stack).  The payload's message: a String (size 24) or a &str (16).
 * Cores only (their segments are searched whole).  Appends ", \"panics\":
 * [{"message"}...]" outermost first, or nothing. */
static void render_unwinding_panics(struct model *model, const struct tscope_thread *th,
				    struct strbuf *out)
{
	struct tscope_session *s = model->s;
	const struct elf_sym *canary_sym =
		program_find_rust_symbol(s->prog, "panic_unwind::imp::CANARY", false, -1);
	if (!canary_sym || !th->sp)
		return;
	uint64_t canary = canary_sym->value + s->bias;
	/* the crashing thread's stack: the core segment holding its sp */
	uint64_t stk_lo = 0, stk_hi = 0;
	size_t nseg = target_num_segments(s->target);
	for (size_t i = 0; i < nseg; i++) {
		uint64_t va, len;
		uint32_t fl;
		const unsigned char *d;
		if (target_segment(s->target, i, &va, &len, &fl, &d) && th->sp >= va &&
		    th->sp < va + len) {
			stk_lo = va;
			stk_hi = va + len;
		}
	}
	if (!stk_hi)
		return;
	struct exc { uint64_t handler_cfa; char *msg; } exc[8];
	size_t nexc = 0;
	static const unsigned char cls[8] = {'M', 'O', 'Z', 0, 'R', 'U', 'S', 'T'};
	for (size_t i = 0; i < nseg && nexc < 8; i++) {
		uint64_t va, len;
		uint32_t fl;
		const unsigned char *d;
		if (!target_segment(s->target, i, &va, &len, &fl, &d) || !(fl & PF_W) || !d)
			continue;
		for (uint64_t o = 0; o + 56 <= len && nexc < 8;) {
			const unsigned char *hit = memmem(d + o, len - o, cls, 8);
			if (!hit)
				break;
			o = (uint64_t)(hit - d);
			uint64_t w[7];
			if (o % 16 || o + 56 > len) {
				o += 8;
				continue;
			}
			memcpy(w, hit, sizeof(w));
			o += 16;
			if (w[4] != canary || w[3] < stk_lo || w[3] >= stk_hi)
				continue;
			/* the payload: (data, vtable [drop, size, align]) */
			uint64_t size = 0, pl[3];
			char *msg = NULL;
			if (val_ok(target_read_u64(s->target, w[6] + 8, &size)) &&
			    (size == 24 || size == 16) &&
			    val_ok(tscope_target_read(s->target, w[5], pl, size))) {
				uint64_t ptr, n;
				if (size == 16) {
					ptr = pl[0];
					n = pl[1];
				} else {
					/* String { vec: { buf: {cap, ptr}, len } }: the
					 * pointer is the one of the three the length is
					 * not (cap >= len) */
					struct tval lenv, ptrv;
					uint64_t st;
					if (!val_ok(tscope_program_find_type(s->prog, "alloc::string::String", &st)) ||
					    !val_ok(val_find(s, (struct tval){0, st}, "len", 2, &lenv)) ||
					    (!val_ok(val_find(s, (struct tval){0, st}, "pointer", 8, &ptrv)) &&
					     !val_ok(val_find(s, (struct tval){0, st}, "ptr", 6, &ptrv))) ||
					    lenv.addr > 16 || ptrv.addr > 16)
						goto next;
					n = pl[lenv.addr / 8];
					ptr = pl[ptrv.addr / 8];
				}
				if (n && n <= 65536) {
					char *text = malloc(n + 1);
					if (text && val_ok(tscope_target_read(s->target, ptr, text, n)) &&
					    utf8_text((unsigned char *)text, n)) {
						text[n] = '\0';
						msg = text;
					} else {
						free(text);
					}
				}
			}
		next:
			exc[nexc].handler_cfa = w[3];
			exc[nexc++].msg = msg;
		}
	}
	if (!nexc)
		return;
	/* outermost first: the higher handler frame */
	for (size_t i = 1; i < nexc; i++)
		for (size_t j = i; j > 0 && exc[j].handler_cfa > exc[j - 1].handler_cfa; j--) {
			struct exc x = exc[j];
			exc[j] = exc[j - 1];
			exc[j - 1] = x;
		}
	sb_puts(out, ", \"panics\": [");
	for (size_t i = 0; i < nexc; i++) {
		sb_puts(out, i ? ", {\"message\": " : "{\"message\": ");
		if (exc[i].msg)
			sb_json_string(out, exc[i].msg);
		else
			sb_puts(out, "null");
		sb_puts(out, "}");
		free(exc[i].msg);
	}
	sb_puts(out, "]");
}

/* "crash": the thread a core was written for when it died of a fatal
 * signal, the signal, and the task that thread was polling (null: none,
 * a blocking-pool or plain thread); null for other cores and processes. */
void crash_render(struct model *model, struct strbuf *out)
{
	int sig = 0;
	const struct tscope_thread *th = target_crash_thread(model->s->target, &sig);
	if (!th) {
		sb_puts(out, "\"crash\": null,\n");
		return;
	}
	sb_printf(out, "\"crash\": {\"thread\": %d, \"signal\": %d, \"signal_name\": \"%s\"",
		  th->tid, sig, signal_name(sig));
	if (th->has_siginfo && th->sig_no == sig) {
		sb_printf(out, ", \"code\": %d", th->sig_code);
		if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE)
			sb_printf(out, ", \"fault_address\": \"0x%llx\"",
				  (unsigned long long)th->sig_addr);
	}
	if (sig == SIGABRT && th->sp) {
		char *msg = panic_message(model, th->sp);
		if (msg) {
			sb_puts(out, ", \"message\": ");
			sb_json_string(out, msg);
			free(msg);
		}
		render_unwinding_panics(model, th, out);
	}
	sb_printf(out, ", \"pc\": \"0x%llx\", \"task\": ", (unsigned long long)th->pc);
	bool found = false;
	for (size_t j = 0; j < model->nthreads && !found; j++)
		if (model->threads[j].tid == th->tid && model->threads[j].has_task) {
			sb_printf(out, "%llu", (unsigned long long)model->threads[j].task_id);
			found = true;
		}
	if (!found)
		sb_puts(out, "null");
	sb_puts(out, "},\n");
}
