/* The crash stage's entry for the render (crash.c). */
#ifndef TSCOPE_CRASH_CRASH_H
#define TSCOPE_CRASH_CRASH_H

#include "model/model.h"

/* "crash" of a core written at a fatal signal, else null. */
void crash_render(struct model *model, struct strbuf *out);

#endif
