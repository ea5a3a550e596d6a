/* tape.c - the op table and reverse-mode sweep; see include/tape.h and include/ops.h. */
#include "ops.h"

#include <stdlib.h>
#include <string.h>

const OpInfo op_table[OP__COUNT] = {
#define UL_OP_ROW(E, n, a) \
    [OP_##E] = {#n, a, op_##n##_forward, op_##n##_backward, op_##n##_forward_ref, op_##n##_backward_ref},
    UL_OP_LIST(UL_OP_ROW)
#undef UL_OP_ROW
};
_Static_assert(sizeof op_table / sizeof op_table[0] == OP__COUNT, "op_table out of step with UL_OP_LIST");

void tape_init(Tape *t, Arena *arena, int max_nodes)
{
    memset(t, 0, sizeof *t);
    t->arena = arena;
    t->cap = max_nodes;
    t->nodes = UL_CALLOC((size_t)max_nodes, sizeof *t->nodes);
    t->record = true;
    t->training = true;
}

void tape_reset(Tape *t)
{
    t->count = 0;
    arena_reset(t->arena);
}

void tape_free(Tape *t)
{
    free(t->nodes);
    t->nodes = NULL;
    t->cap = t->count = 0;
}

bool tape_wants_grad(const Tape *t, Tensor *const *in, int nin)
{
    if (!t->record) return false;
    for (int i = 0; i < nin; i++)
        if (in[i] && in[i]->grad) return true;
    return false;
}

void tape_apply(Tape *t, int op, Tensor *out, Tensor *const *in, int nin, void *attr)
{
    UL_CHECK(op >= 0 && op < OP__COUNT, "bad op %d", op);
    UL_CHECK(nin <= OP_MAX_INPUTS, "op %s: %d inputs", op_table[op].name, nin);
    TapeNode local;
    TapeNode *node = &local;
    bool keep = t->record && out->grad != NULL;
    if (keep) {
        UL_CHECK(t->count < t->cap, "tape full (%d nodes); raise the tape capacity", t->cap);
        node = &t->nodes[t->count];
    }
    memset(node, 0, sizeof *node);
    node->op = op;
    node->out = out;
    for (int i = 0; i < nin; i++) node->in[i] = in[i];
    node->attr = attr;
    (t->use_ref ? op_table[op].forward_ref : op_table[op].forward)(node);
    if (keep) t->count++;
}

void tape_backward(Tape *t, Tensor *out, const float *seed)
{
    UL_CHECK(out->grad != NULL, "tape_backward: output carries no gradient (nothing requires grad?)");
    if (seed)
        for (size_t i = 0; i < out->n; i++) out->grad[i] += seed[i];
    else
        for (size_t i = 0; i < out->n; i++) out->grad[i] += 1.0f;
    for (int i = t->count - 1; i >= 0; i--) {
        TapeNode *node = &t->nodes[i];
        if (node->out->grad) (t->use_ref ? op_table[node->op].backward_ref : op_table[node->op].backward)(node);
    }
}
