// Conv2D forward by Winograd F(2x2, 3x3) (internal; nn/conv2d.cpp calls it
// for the shapes winograd_applies accepts, for the forward pass and for the
// stride-1 dX, which is a forward convolution of dZ with the flipped kernel).
#pragma once

#include <cstdint>

#include "matnet/activations.hpp"
#include "matnet/conv.hpp"

namespace matnet::detail {

/// True when s is a 3x3, stride-1, undilated convolution with enough
/// channels per group, a wide enough output and enough output tiles for
/// the Winograd path to beat the direct one in T (thresholds::winograd_*).
/// Any padding, also negative (the flipped dX's cropping).
template <class T>
bool winograd_applies(const Conv2dShape& s);

/// y (N, F, OH, OW) = act(z), z = conv(x, w) + b, as conv2d_forward (z may be
/// null, b may be null), on at most max_threads threads. No validation:
/// the caller has checked s, the pointers and winograd_applies(s).
template <class T>
void winograd_forward(T* y, T* z, const T* x, const T* w, const T* b, const Conv2dShape& s,
                      Activation act, T slope, int max_threads);

}  // namespace matnet::detail
