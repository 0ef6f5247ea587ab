"""
matnet C++ kernels (private; use the matnet package)
"""
from __future__ import annotations
import collections.abc
import numpy
import typing
__all__: list[str] = ['DenseChain', 'activation', 'activation_backward', 'activation_names', 'adam_update', 'attention', 'attention_backward', 'avg_pool2d_backward', 'avg_pool2d_forward', 'batchnorm_backward', 'batchnorm_forward', 'binary_cross_entropy', 'conv2d_backward', 'conv2d_forward', 'cpu_info', 'cross_entropy', 'dense_backward', 'dense_forward', 'dense_infer', 'gemm', 'get_num_threads', 'layer_norm', 'layer_norm_backward', 'linalg_cholesky', 'linalg_det', 'linalg_eigh', 'linalg_inv', 'linalg_lu_factor', 'linalg_qr', 'linalg_solve', 'linalg_svd', 'matmul', 'matvec', 'max_num_threads', 'max_pool2d_backward', 'max_pool2d_forward', 'mse', 'rmsprop_update', 'set_num_threads', 'sgd_update', 'softmax', 'softmax_backward']
class DenseChain:
    """
    Inference through dense layers [(w, b, activation, slope), ...], checked once; call it on x.
    """
    def __call__(self, x: typing.Any, check_finite: bool = False) -> numpy.ndarray:
        """
        y for x (N, in_features); with check_finite, NaN or Inf in x is a ValueError.
        """
    def __init__(self, layers: collections.abc.Sequence) -> None:
        ...
def _gemm_blocking(dtype: str) -> dict:
    """
    Block sizes (mr, nr, mc, kc, nc) of the active GEMM kernel; for tests and tuning.
    """
def activation(x: typing.Any, kind: str, negative_slope: typing.SupportsFloat | typing.SupportsIndex = 0.01) -> numpy.ndarray:
    """
    act(x) element-wise for kind in relu, leaky_relu, sigmoid, tanh, gelu, gelu_tanh, silu, identity; a new array of x's shape and dtype.
    """
def activation_backward(grad: typing.Any, x: typing.Any, kind: str, negative_slope: typing.SupportsFloat | typing.SupportsIndex = 0.01) -> numpy.ndarray:
    """
    grad * act'(x), x the forward input; a new array.
    """
def activation_names() -> list:
    """
    Names accepted by activation() and dense_forward().
    """
def adam_update(param: typing.Any, grad: typing.Any, m: typing.Any, v: typing.Any, *, step: typing.SupportsInt | typing.SupportsIndex, lr: typing.SupportsFloat | typing.SupportsIndex, beta1: typing.SupportsFloat | typing.SupportsIndex = 0.9, beta2: typing.SupportsFloat | typing.SupportsIndex = 0.999, eps: typing.SupportsFloat | typing.SupportsIndex = 1e-08, weight_decay: typing.SupportsFloat | typing.SupportsIndex = 0.0, decoupled: bool = False, check_only: bool = False) -> None:
    """
    In-place Adam step (AdamW when decoupled), torch.optim formulas, 1-based step.
    """
def attention(q: typing.Any, k: typing.Any, v: typing.Any, mask: typing.Any, scale: typing.SupportsFloat | typing.SupportsIndex, causal: bool = False) -> tuple:
    """
    (out, lse) of softmax(scale * q k^T + mask) v; mask additive, of q's dtype, shaped (..., Lq, Lk) (a broadcast view is read in place).
    """
def attention_backward(grad_out: typing.Any, q: typing.Any, k: typing.Any, v: typing.Any, out: typing.Any, lse: typing.Any, mask: typing.Any, scale: typing.SupportsFloat | typing.SupportsIndex, causal: bool = False) -> tuple:
    """
    (dq, dk, dv) of attention() from grad_out and the forward's out and lse.
    """
def avg_pool2d_backward(grad_y: typing.Any, x_shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], kernel_size: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], stride: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], padding: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], count_include_pad: bool = True) -> numpy.ndarray:
    """
    dx (x_shape): grad_y spread over each window.
    """
def avg_pool2d_forward(x: typing.Any, kernel_size: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], stride: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], padding: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], count_include_pad: bool = True) -> numpy.ndarray:
    """
    y: mean over each window of x (N, C, H, W).
    """
def batchnorm_backward(grad_y: typing.Any, x: typing.Any, gamma: typing.Any, mean: typing.Any, invstd: typing.Any, batch_stats: bool = True, need_dx: bool = True) -> tuple:
    """
    (dx, dgamma, dbeta) from grad_y, with the mean/invstd the forward returned.
    """
def batchnorm_forward(x: typing.Any, gamma: typing.Any, beta: typing.Any, running_mean: typing.Any, running_var: typing.Any, training: bool, momentum: typing.SupportsFloat | typing.SupportsIndex = 0.1, eps: typing.SupportsFloat | typing.SupportsIndex = 1e-05) -> tuple:
    """
    (y, mean, invstd) of batch normalization over x (N, C, ...) per channel; training uses the batch statistics and updates running_mean/var in place (PyTorch's rule).
    """
def binary_cross_entropy(logits: typing.Any, targets: typing.Any) -> tuple:
    """
    (loss, grad): binary cross-entropy with logits, mean over all elements.
    """
def conv2d_backward(grad_y: typing.Any, x: typing.Any, w: typing.Any, z: typing.Any, stride: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], padding: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], dilation: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], groups: typing.SupportsInt | typing.SupportsIndex, activation: typing.Any = None, negative_slope: typing.SupportsFloat | typing.SupportsIndex = 0.01, need_dx: bool = True, need_db: bool = True) -> tuple:
    """
    (dx, dw, db) from grad_y: dZ = grad_y * act'(z); db = dZ summed over n, h, w; dw, dx by implicit GEMM (None where not needed).
    """
def conv2d_forward(x: typing.Any, w: typing.Any, b: typing.Any, stride: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], padding: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], dilation: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], groups: typing.SupportsInt | typing.SupportsIndex, activation: typing.Any = None, negative_slope: typing.SupportsFloat | typing.SupportsIndex = 0.01, keep_z: bool = True) -> tuple:
    """
    (y, z): z = conv2d(x, w) + b (NCHW; padding = (top, bottom, left, right)), y = act(z); z is y for activation None, None when not keep_z.
    """
def cpu_info() -> dict:
    """
    Which kernel path runs: ISA in use, thread count, supported ISAs, GEMM microkernels.
    """
def cross_entropy(logits: typing.Any, labels: typing.Any, label_smoothing: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> tuple:
    """
    (loss, grad): softmax cross-entropy of (batch, classes) logits with integer labels, mean over the batch; grad = d loss / d logits.
    """
def dense_backward(grad_y: typing.Any, x: typing.Any, w: typing.Any, z: typing.Any, activation: typing.Any = None, negative_slope: typing.SupportsFloat | typing.SupportsIndex = 0.01, need_dx: bool = True, dw_out: typing.Any = None, db_out: typing.Any = None) -> tuple:
    """
    (dx, dw, db) from grad_y: dZ = grad_y * act'(z) fused with db = dZ.sum(0); dw = x.T @ dZ; dx = dZ @ w.T (None unless need_dx); dw and db into dw_out and db_out when given.
    """
def dense_forward(x: typing.Any, w: typing.Any, b: typing.Any = None, activation: typing.Any = None, negative_slope: typing.SupportsFloat | typing.SupportsIndex = 0.01) -> tuple:
    """
    (y, z): z = x @ w + b, y = act(z), bias and activation fused into the GEMM; z is y when the activation is None.
    """
def dense_infer(x: typing.Any, w: typing.Any, b: typing.Any = None, activation: typing.Any = None, negative_slope: typing.SupportsFloat | typing.SupportsIndex = 0.01, out: typing.Any = None) -> typing.Any:
    """
    y = act(x @ w + b) without the pre-activation (inference); into out when given.
    """
def gemm(a: typing.Any, b: typing.Any, c: typing.Any = None, *, alpha: typing.SupportsFloat | typing.SupportsIndex = 1.0, beta: typing.SupportsFloat | typing.SupportsIndex = 0.0, trans_a: bool = False, trans_b: bool = False) -> numpy.ndarray:
    """
    alpha * op(a) @ op(b) + beta * c; updates c in place when given and returns it.
    """
def get_num_threads() -> int:
    """
    Number of threads matnet's kernels use (process-wide; honours OMP_NUM_THREADS).
    """
def layer_norm(x: typing.Any, weight: typing.Any = None, bias: typing.Any = None, eps: typing.SupportsFloat | typing.SupportsIndex = 1e-05) -> tuple:
    """
    (y, mean, rstd): layer normalization of x over its last axis, y = xhat * weight + bias.
    """
def layer_norm_backward(grad_y: typing.Any, x: typing.Any, weight: typing.Any, mean: typing.Any, rstd: typing.Any) -> tuple:
    """
    (dx, dweight, dbias) of layer_norm from the forward input and statistics.
    """
def linalg_cholesky(a: numpy.ndarray) -> typing.Any:
    """
    Lower Cholesky factor in place; returns info. The input stack (batch, m, n) must be a writeable C-contiguous float32/float64 array; it is overwritten. info[i]: 0 ok, -1 NaN/Inf in matrix i, k+1 failure at step k.
    """
def linalg_det(a: numpy.ndarray) -> typing.Any:
    """
    Determinants via LU; returns (det, sign, logabsdet, info). a (batch, n, n) must be a C-contiguous float32/float64 array; it is only read. info[i]: 0 ok, -1 NaN/Inf in matrix i, k+1 zero pivot at step k.
    """
def linalg_eigh(a: numpy.ndarray, vectors: bool) -> typing.Any:
    """
    Symmetric eigensolver (lower triangle read); returns (w, v or None, info). a (batch, n, n) must be a C-contiguous float32/float64 array; it is only read. info[i]: 0 ok, -1 NaN/Inf in matrix i, k+1 zero pivot at step k.
    """
def linalg_inv(a: numpy.ndarray) -> typing.Any:
    """
    Inverses via LU; returns (inv, info). a (batch, n, n) must be a C-contiguous float32/float64 array; it is only read. info[i]: 0 ok, -1 NaN/Inf in matrix i, k+1 zero pivot at step k.
    """
def linalg_lu_factor(a: numpy.ndarray) -> typing.Any:
    """
    LU with partial pivoting in place; returns (piv, info). The input stack (batch, m, n) must be a writeable C-contiguous float32/float64 array; it is overwritten. info[i]: 0 ok, -1 NaN/Inf in matrix i, k+1 failure at step k.
    """
def linalg_qr(a: numpy.ndarray, q_cols: typing.SupportsInt | typing.SupportsIndex) -> typing.Any:
    """
    Householder QR: a becomes R; returns (Q with q_cols columns or None if q_cols < 0, info). The input stack (batch, m, n) must be a writeable C-contiguous float32/float64 array; it is overwritten. info[i]: 0 ok, -1 NaN/Inf in matrix i, k+1 failure at step k.
    """
def linalg_solve(a: numpy.ndarray, b: numpy.ndarray) -> typing.Any:
    """
    Solves a x = b in place (b (batch, n, k), writeable and C-contiguous, becomes x); returns info. a (batch, n, n) must be a C-contiguous float32/float64 array; it is only read. info[i]: 0 ok, -1 NaN/Inf in matrix i, k+1 zero pivot at step k.
    """
def linalg_svd(a: numpy.ndarray, compute_uv: bool, full_matrices: bool) -> typing.Any:
    """
    SVD; returns (s, u, vt, info), u and vt None without compute_uv. The input stack (batch, m, n) must be a writeable C-contiguous float32/float64 array; it is overwritten. info[i]: 0 ok, -1 NaN/Inf in matrix i, k+1 failure at step k.
    """
def matmul(a: typing.Any, b: typing.Any, trans_a: bool = False, trans_b: bool = False, out: typing.Any = None) -> numpy.ndarray:
    """
    op(a) @ op(b) for float32/float64 arrays with np.matmul semantics (N-D batches broadcast, 1-D operands); writes into out when given.
    """
def matvec(a: typing.Any, x: typing.Any, trans: bool = False, out: typing.Any = None) -> numpy.ndarray:
    """
    op(a) @ x for a 2-D a and a 1-D x (GEMV).
    """
def max_num_threads() -> int:
    """
    The largest count set_num_threads accepts (4 x the CPUs available).
    """
def max_pool2d_backward(grad_y: typing.Any, argmax: typing.Any, x_shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], kernel_size: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], stride: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], padding: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> numpy.ndarray:
    """
    dx (x_shape): grad_y routed to the argmax positions.
    """
def max_pool2d_forward(x: typing.Any, kernel_size: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], stride: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], padding: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> tuple:
    """
    (y, argmax): max over each window of x (N, C, H, W); argmax (int64) indexes the input plane, for max_pool2d_backward.
    """
def mse(pred: typing.Any, target: typing.Any) -> tuple:
    """
    (loss, grad): mean squared error over all elements; grad = d loss / d pred.
    """
def rmsprop_update(param: typing.Any, grad: typing.Any, square_avg: typing.Any, *, lr: typing.SupportsFloat | typing.SupportsIndex, alpha: typing.SupportsFloat | typing.SupportsIndex = 0.99, eps: typing.SupportsFloat | typing.SupportsIndex = 1e-08, weight_decay: typing.SupportsFloat | typing.SupportsIndex = 0.0, momentum: typing.SupportsFloat | typing.SupportsIndex = 0.0, momentum_buffer: typing.Any = None, centered: bool = False, grad_avg: typing.Any = None, check_only: bool = False) -> None:
    """
    In-place RMSprop step (torch.optim.RMSprop formulas).
    """
def set_num_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Sets the number of threads matnet's kernels use, for every thread (ValueError outside [1, max_num_threads()]).
    """
def sgd_update(param: typing.Any, grad: typing.Any, velocity: typing.Any, *, lr: typing.SupportsFloat | typing.SupportsIndex, momentum: typing.SupportsFloat | typing.SupportsIndex = 0.0, dampening: typing.SupportsFloat | typing.SupportsIndex = 0.0, nesterov: bool = False, weight_decay: typing.SupportsFloat | typing.SupportsIndex = 0.0, first_step: bool = False, check_only: bool = False) -> None:
    """
    In-place SGD step (torch.optim.SGD formulas); check_only: validate, write nothing.
    """
def softmax(x: typing.Any, axis: typing.SupportsInt | typing.SupportsIndex = -1, log: bool = False) -> numpy.ndarray:
    """
    softmax (or log_softmax when log) of x along axis; a new array.
    """
def softmax_backward(grad: typing.Any, y: typing.Any, axis: typing.SupportsInt | typing.SupportsIndex = -1, log: bool = False) -> numpy.ndarray:
    """
    Backward of softmax (or log_softmax) from its forward output y; a new array.
    """
