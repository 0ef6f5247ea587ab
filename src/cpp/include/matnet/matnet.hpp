// matnet/matnet.hpp - umbrella header: the whole public C++ API of libmatnet.
//
//   #include <matnet/matnet.hpp>      // namespace matnet, row-major throughout
//
// runtime.hpp      active_isa(), set_num_threads(), get_num_threads()
// gemm.hpp         gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc),
//                  gemm_batched (strided batches, stride 0 to share an operand)
// gemv.hpp         gemv(trans, m, n, alpha, a, lda, x, incx, beta, y, incy)
// activations.hpp  Activation, activation_forward/backward, softmax, log_softmax
// attention.hpp    attention_forward / attention_backward (flash-style SDPA, masks, causal)
// dense.hpp        dense_forward / dense_backward (fused bias + activation)
// layer_norm.hpp   layer_norm_forward / layer_norm_backward (last dimension)
// losses.hpp       cross_entropy, mse, binary_cross_entropy (loss + gradient)
// model.hpp        load_model(path) -> Model::predict(x, rows, out): serve a model
//                  saved from Python as .safetensors; TensorFile reads any safetensors file
// optim.hpp        sgd_update, adam_update (Adam/AdamW), rmsprop_update
// linalg.hpp       matnet::linalg:: lu_factor, solve, det, inv, cholesky, qr, eigh, svd
//                  (stacks of matrices, per-matrix info codes)
//
// errors.hpp       matnet::invalid_argument (derived from std::invalid_argument),
//                  thrown by every function for bad arguments, and model_format_error
//                  (derived from it) for malformed model files; an unavailable
//                  ISA forced by MATNET_ISA throws std::runtime_error.
//
// Pointers need only the alignment of their element type. Every function may
// be called concurrently from several threads on distinct outputs.
#pragma once

#include "matnet/activations.hpp"
#include "matnet/attention.hpp"
#include "matnet/conv.hpp"
#include "matnet/dense.hpp"
#include "matnet/errors.hpp"
#include "matnet/gemm.hpp"
#include "matnet/gemv.hpp"
#include "matnet/layer_norm.hpp"
#include "matnet/linalg.hpp"
#include "matnet/losses.hpp"
#include "matnet/model.hpp"
#include "matnet/norm.hpp"
#include "matnet/optim.hpp"
#include "matnet/pool.hpp"
#include "matnet/runtime.hpp"
