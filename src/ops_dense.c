/* ops_dense.c - PLACEHOLDER: to be replaced by the real implementation of these ops. */
#include "ops.h"

void op_linear_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op linear forward: not implemented"); }
void op_linear_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op linear backward: not implemented"); }
void op_linear_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op linear forward_ref: not implemented"); }
void op_linear_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op linear backward_ref: not implemented"); }
void op_matmul_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op matmul forward: not implemented"); }
void op_matmul_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op matmul backward: not implemented"); }
void op_matmul_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op matmul forward_ref: not implemented"); }
void op_matmul_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op matmul backward_ref: not implemented"); }
void op_conv2d_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op conv2d forward: not implemented"); }
void op_conv2d_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op conv2d backward: not implemented"); }
void op_conv2d_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op conv2d forward_ref: not implemented"); }
void op_conv2d_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op conv2d backward_ref: not implemented"); }
void op_pad2d_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op pad2d forward: not implemented"); }
void op_pad2d_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op pad2d backward: not implemented"); }
void op_pad2d_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op pad2d forward_ref: not implemented"); }
void op_pad2d_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op pad2d backward_ref: not implemented"); }
void op_upsample2x_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op upsample2x forward: not implemented"); }
void op_upsample2x_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op upsample2x backward: not implemented"); }
void op_upsample2x_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op upsample2x forward_ref: not implemented"); }
void op_upsample2x_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op upsample2x backward_ref: not implemented"); }
void op_avgpool2d_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op avgpool2d forward: not implemented"); }
void op_avgpool2d_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op avgpool2d backward: not implemented"); }
void op_avgpool2d_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op avgpool2d forward_ref: not implemented"); }
void op_avgpool2d_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op avgpool2d backward_ref: not implemented"); }
void op_maxpool2d_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op maxpool2d forward: not implemented"); }
void op_maxpool2d_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op maxpool2d backward: not implemented"); }
void op_maxpool2d_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op maxpool2d forward_ref: not implemented"); }
void op_maxpool2d_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op maxpool2d backward_ref: not implemented"); }
void op_global_avgpool_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op global_avgpool forward: not implemented"); }
void op_global_avgpool_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op global_avgpool backward: not implemented"); }
void op_global_avgpool_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op global_avgpool forward_ref: not implemented"); }
void op_global_avgpool_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op global_avgpool backward_ref: not implemented"); }
