"""A two-layer network trained twice: backprop written by hand, then by autograd.

The network is ``y = relu(x @ w1) @ w2`` with a sum-of-squares loss, on random data.
The first version spells out the chain rule one matrix product at a time; the second
lets autograd derive it.  Both start from the same weights, so their gradients must agree
and their losses must fall together.

    python examples/two_layer_backprop.py --steps 500
"""
import argparse

import graphc as torch

N, D_IN, H, D_OUT = 64, 1000, 100, 10


def forward(x, w1, w2):
    """Returns the hidden pre-activation, the hidden activation and the prediction."""
    h = x.mm(w1)
    h_relu = h.clamp(min=0)
    return h, h_relu, h_relu.mm(w2)


def hand_written_gradients(x, y, w1, w2):
    """Loss and (d loss/d w1, d loss/d w2), by the chain rule written out."""
    h, h_relu, y_pred = forward(x, w1, w2)
    loss = (y_pred - y).pow(2).sum()
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h_relu.t().mm(grad_y_pred)
    grad_h_relu = grad_y_pred.mm(w2.t())
    grad_h = grad_h_relu.clone()
    grad_h[h < 0] = 0
    grad_w1 = x.t().mm(grad_h)
    return loss.item(), grad_w1, grad_w2


def autograd_gradients(x, y, w1, w2):
    """The same loss and gradients, derived by autograd (w1, w2 require grad)."""
    _, _, y_pred = forward(x, w1, w2)
    loss = (y_pred - y).pow(2).sum()
    loss.backward()
    return loss.item(), w1.grad, w2.grad


def relative_error(a, b):
    """max |a - b| relative to max |b|: one number for 'these gradients agree'."""
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale > 0 else 1.0)


def main(steps=500, lr=1e-6, seed=0, quiet=False):
    """Trains both versions for ``steps`` steps of plain gradient descent.

    Returns a dict with both loss curves and the largest relative difference between
    the two gradient computations over all steps.
    """
    torch.manual_seed(seed)
    x = torch.randn(N, D_IN)
    y = torch.randn(N, D_OUT)
    w1 = torch.randn(D_IN, H)
    w2 = torch.randn(H, D_OUT)
    # The autograd copy starts from the same weights and tracks their gradients.
    a1 = w1.clone().requires_grad_()
    a2 = w2.clone().requires_grad_()
    hand_losses, autograd_losses, grad_error = [], [], 0.0
    for step in range(steps):
        hand_loss, g1, g2 = hand_written_gradients(x, y, w1, w2)
        auto_loss, ag1, ag2 = autograd_gradients(x, y, a1, a2)
        grad_error = max(grad_error, relative_error(ag1, g1), relative_error(ag2, g2))
        hand_losses.append(hand_loss)
        autograd_losses.append(auto_loss)
        w1 -= lr * g1
        w2 -= lr * g2
        with torch.no_grad():
            a1 -= lr * a1.grad
            a2 -= lr * a2.grad
            a1.grad.zero_()
            a2.grad.zero_()
        if not quiet and (step % 100 == 99 or step == 0):
            print(f"step {step + 1:4d}  hand-written loss {hand_loss:<12.6g}  "
                  f"autograd loss {auto_loss:.6g}")
    if not quiet:
        print(f"largest relative gradient difference: {grad_error:.2e}")
    return {"hand_losses": hand_losses, "autograd_losses": autograd_losses,
            "grad_error": grad_error}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    main(steps=args.steps, lr=args.lr, seed=args.seed, quiet=args.quiet)
