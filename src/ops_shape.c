/* ops_shape.c - PLACEHOLDER: to be replaced by the real implementation of these ops. */
#include "ops.h"

void op_attention_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op attention forward: not implemented"); }
void op_attention_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op attention backward: not implemented"); }
void op_attention_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op attention forward_ref: not implemented"); }
void op_attention_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op attention backward_ref: not implemented"); }
void op_permute_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op permute forward: not implemented"); }
void op_permute_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op permute backward: not implemented"); }
void op_permute_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op permute forward_ref: not implemented"); }
void op_permute_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op permute backward_ref: not implemented"); }
void op_slice_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op slice forward: not implemented"); }
void op_slice_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op slice backward: not implemented"); }
void op_slice_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op slice forward_ref: not implemented"); }
void op_slice_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op slice backward_ref: not implemented"); }
void op_concat_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op concat forward: not implemented"); }
void op_concat_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op concat backward: not implemented"); }
void op_concat_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op concat forward_ref: not implemented"); }
void op_concat_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op concat backward_ref: not implemented"); }
void op_embedding_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op embedding forward: not implemented"); }
void op_embedding_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op embedding backward: not implemented"); }
void op_embedding_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op embedding forward_ref: not implemented"); }
void op_embedding_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op embedding backward_ref: not implemented"); }
void op_timestep_emb_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op timestep_emb forward: not implemented"); }
void op_timestep_emb_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op timestep_emb backward: not implemented"); }
void op_timestep_emb_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op timestep_emb forward_ref: not implemented"); }
void op_timestep_emb_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op timestep_emb backward_ref: not implemented"); }
void op_modulate_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op modulate forward: not implemented"); }
void op_modulate_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op modulate backward: not implemented"); }
void op_modulate_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op modulate forward_ref: not implemented"); }
void op_modulate_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op modulate backward_ref: not implemented"); }
void op_unpatchify_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op unpatchify forward: not implemented"); }
void op_unpatchify_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op unpatchify backward: not implemented"); }
void op_unpatchify_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op unpatchify forward_ref: not implemented"); }
void op_unpatchify_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op unpatchify backward_ref: not implemented"); }
