/* The graph stage's entry points (graph/): what the render calls. */
#ifndef TSCOPE_GRAPH_API_H
#define TSCOPE_GRAPH_API_H

#include "model/model.h"

/* What each of the model's tasks waits on (model->graph). */
void graph_build(struct model *model);
/* Then the holders, resources' states, edges and diagnoses: once. */
void graph_complete(struct model *model);
/* A task's "waits_on" (its resource, side, where), in its JSON object. */
void graph_render_task_wait(struct model *model, const struct task_rec *t,
			    struct strbuf *o);
/* "resources", "edges", "diagnoses". */
void graph_render(struct model *model, struct strbuf *o);
void graph_free(struct model *model);

#endif
