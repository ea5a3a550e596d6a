/* ops_norm.c - PLACEHOLDER: to be replaced by the real implementation of these ops. */
#include "ops.h"

void op_batchnorm2d_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op batchnorm2d forward: not implemented"); }
void op_batchnorm2d_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op batchnorm2d backward: not implemented"); }
void op_batchnorm2d_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op batchnorm2d forward_ref: not implemented"); }
void op_batchnorm2d_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op batchnorm2d backward_ref: not implemented"); }
void op_groupnorm_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op groupnorm forward: not implemented"); }
void op_groupnorm_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op groupnorm backward: not implemented"); }
void op_groupnorm_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op groupnorm forward_ref: not implemented"); }
void op_groupnorm_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op groupnorm backward_ref: not implemented"); }
void op_layernorm_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op layernorm forward: not implemented"); }
void op_layernorm_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op layernorm backward: not implemented"); }
void op_layernorm_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op layernorm forward_ref: not implemented"); }
void op_layernorm_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op layernorm backward_ref: not implemented"); }
void op_softmax_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op softmax forward: not implemented"); }
void op_softmax_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op softmax backward: not implemented"); }
void op_softmax_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op softmax forward_ref: not implemented"); }
void op_softmax_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op softmax backward_ref: not implemented"); }
void op_log_softmax_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op log_softmax forward: not implemented"); }
void op_log_softmax_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op log_softmax backward: not implemented"); }
void op_log_softmax_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op log_softmax forward_ref: not implemented"); }
void op_log_softmax_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op log_softmax backward_ref: not implemented"); }
void op_cross_entropy_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op cross_entropy forward: not implemented"); }
void op_cross_entropy_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op cross_entropy backward: not implemented"); }
void op_cross_entropy_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op cross_entropy forward_ref: not implemented"); }
void op_cross_entropy_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op cross_entropy backward_ref: not implemented"); }
void op_mse_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op mse forward: not implemented"); }
void op_mse_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op mse backward: not implemented"); }
void op_mse_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op mse forward_ref: not implemented"); }
void op_mse_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op mse backward_ref: not implemented"); }
void op_kl_div_forward(TapeNode *node) { (void)node; UL_CHECK(0, "op kl_div forward: not implemented"); }
void op_kl_div_backward(TapeNode *node) { (void)node; UL_CHECK(0, "op kl_div backward: not implemented"); }
void op_kl_div_forward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op kl_div forward_ref: not implemented"); }
void op_kl_div_backward_ref(TapeNode *node) { (void)node; UL_CHECK(0, "op kl_div backward_ref: not implemented"); }
