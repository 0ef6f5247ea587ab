"""The seeds' linear-algebra story on matnet, end to end.

    python examples/linear_algebra_tour.py [--out DIR]

1. Norms: ||[3, 4]||_1 = 7, ||.||_2 = 5, ||.||_inf = 4.
2. det as the area scale of a map: a rotation keeps area (det 1), a
   singular map squashes the plane onto a line (det 0).
3. Ax = b, and a least-squares house-price fit.
4. Eigenvectors: A v = lambda v for [[2, 1], [1, 2]].
5. The Hessian of a small trained model: its spectrum, condition number
   and max_lr = 2/lambda_max; gradient descent 10% below max_lr converges,
   10% above it diverges.
6. PCA of the handwritten digits to 2-D, saved as a scatter plot PNG.

Runs in a few seconds; the test suite runs it as a smoke test.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import matnet as mn

L = mn.linalg


def section(title: str) -> None:
    print(f"\n== {title}")


def norms() -> None:
    section("norms")
    v = np.array([3.0, 4.0])
    print(f"v = {v}: L1 {L.norm(v, 1):g}, L2 {L.norm(v):g}, Linf {L.norm(v, np.inf):g}")
    assert (L.norm(v, 1), L.norm(v), L.norm(v, np.inf)) == (7, 5, 4)


def determinants() -> None:
    section("det: how a map scales area")
    th = np.pi / 6
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    sing = np.array([[1.0, 2.0], [2.0, 4.0]])
    print(f"rotation by 30 degrees: det {L.det(rot):.12f} (area kept)")
    print(f"[[1, 2], [2, 4]]:       det {L.det(sing):g} (the plane falls onto a line)")
    print(f"diag(2, 3):             det {L.det(np.diag([2.0, 3.0])):g} (unit square -> area 6)")
    assert abs(L.det(rot) - 1) < 1e-12 and L.det(sing) == 0


def linear_systems(rng: np.random.Generator) -> None:
    section("Ax = b and least squares")
    a = np.diag([2.0, 3.0])
    print(f"diag(2, 3) @ [1, 2] = {a @ np.array([1.0, 2.0])}; "
          f"solve(diag(2, 3), [2, 6]) = {L.solve(a, np.array([2.0, 6.0]))}")
    size = rng.uniform(50, 250, 100)                     # m^2
    price = 3000 * size + 50_000 + rng.normal(0, 20_000, 100)
    x = np.column_stack([size, np.ones_like(size)])
    (slope, intercept), residuals, rank, s = L.lstsq(x, price)
    print(f"house prices: price ~ {slope:,.0f} * size + {intercept:,.0f} "
          f"(rank {rank}, singular values {s.round(1)})")
    assert abs(slope - 3000) < 300


def eigen() -> None:
    section("eigenvectors: directions a map only stretches")
    a = np.array([[2.0, 1.0], [1.0, 2.0]])
    w, v = L.eigh(a)
    for lam, vec in zip(w, v.T):
        print(f"lambda = {lam:g}, v = {vec.round(4)}, A v = {(a @ vec).round(4)} = lambda v")
        np.testing.assert_allclose(a @ vec, lam * vec, atol=1e-14)


def trained_hessian(rng: np.random.Generator) -> None:
    section("the Hessian of a small trained model")
    # Linear regression under MSE: its loss is exactly quadratic, so the
    # Hessian (2/N [X 1]^T [X 1]) is the same everywhere and the 2/lambda_max
    # rule is sharp. (A nonlinear network's curvature changes as it moves,
    # and a step above 2/lambda_max can carry it to a flatter region.)
    n, d = 200, 4
    x = rng.standard_normal((n, d)) * np.array([3.0, 1.0, 0.5, 0.2])
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]]) + 1 + 0.1 * rng.standard_normal((n, 1))
    model = mn.Sequential([mn.layers.Dense(d, 1, seed=0, dtype=np.float64)])
    model.compile(optimizer=mn.optim.Adam(5e-2), loss="mse", metrics=[])
    model.fit(x, y, epochs=100, batch_size=50, verbose=0)
    h = mn.analysis.hessian(model, x, y)
    w = L.eigvalsh(h)
    lam, max_lr = mn.analysis.sharpness(model, x, y)
    kappa = mn.analysis.condition_number(model, x, y)
    print(f"{h.shape[0]} parameters; Hessian spectrum {w.round(4)}")
    print(f"kappa = lambda_max / lambda_min = {kappa:.4g}: the long thin valley GD crawls along")
    print(f"Lanczos: lambda_max = {lam:.6g} (full Hessian: {w[-1]:.6g}), "
          f"max_lr = 2/lambda_max = {max_lr:.4g}")

    # Start both runs a little off the minimum, so that the stiffest direction
    # has a component to amplify (at the trained point it is rounding noise).
    nudge = np.random.default_rng(7)
    start = [p + 1e-2 * nudge.standard_normal(p.shape).astype(p.dtype)
             for p in model.parameters()]

    def gd(lr: float, steps: int = 200) -> float:
        model.layers[0].set_params({"W": start[0], "b": start[1]})
        opt = mn.optim.SGD(lr=lr)
        for _ in range(steps):
            _, grad = mn.losses.mse(model.forward(x), y)
            model.backward(grad, need_input_grad=False)
            opt.step(model)
        return float(mn.losses.mse(model.forward(x), y)[0])

    model.layers[0].set_params({"W": start[0], "b": start[1]})
    base = float(mn.losses.mse(model.forward(x), y)[0])
    below, above = gd(0.9 * max_lr), gd(1.1 * max_lr)
    print(f"full-batch GD for 200 steps from near the trained point (loss {base:.4g}):")
    print(f"  lr = 0.9 max_lr -> loss {below:.4g} (converges)")
    print(f"  lr = 1.1 max_lr -> loss {above:.4g} (diverges)")
    # |1 - lr lambda_max| = 1.2 at 1.1 max_lr: each step multiplies the stiff
    # component by 1.2 (1.2^200 ~ 1e16); 0.9 max_lr shrinks it by 0.8. At
    # 1.02 max_lr (a factor of 1.04 in exact arithmetic) the rise after 200
    # steps ranged 5x to 3500x over runs: the trained start point differs
    # with the threads' summation order, and so does its stiff component.
    # A tenfold rise is far outside rounding.
    assert below <= base and not above < 10 * base  # (an overflow to inf/nan counts)
    model.layers[0].set_params({"W": start[0], "b": start[1]})


def pca_digits(out_dir: str) -> str:
    section("PCA of the handwritten digits")
    (x, y), _ = mn.datasets.load_digits(test_size=0.2)
    pca = L.PCA(2)
    z = pca.fit_transform(x)
    print(f"{x.shape[0]} digits of {x.shape[1]} pixels -> 2-D; explained variance ratio "
          f"{pca.explained_variance_ratio_.round(3)}; 90% of the variance needs "
          f"{L.PCA(0.9).fit(x).n_components_} components")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(z[:, 0], z[:, 1], c=y, cmap="tab10", s=8)
    fig.colorbar(sc, ax=ax, label="digit")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title("digits, PCA to 2-D (matnet.linalg.PCA)")
    path = os.path.join(out_dir, "digits_pca.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"scatter plot: {path}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="directory for digits_pca.png")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)
    norms()
    determinants()
    linear_systems(rng)
    eigen()
    trained_hessian(rng)
    pca_digits(args.out)
    print("\ntour complete")


if __name__ == "__main__":
    main()
