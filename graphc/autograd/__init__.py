"""``graphc.autograd``: the backward engine (``engine.py``), user-defined functions
(``function.py``), ``gradcheck``, gradient hooks and inference mode (``hooks.py``), and
``graphc.autograd.functional`` (jacobian, hessian, vjp, jvp; imported by ``graphc``)."""
from graphc.autograd.engine import (AccumulateGrad, Node, Variable, backward, grad,
                                    run_backward, retain, no_grad, enable_grad,
                                    set_grad_enabled, is_grad_enabled)
from graphc.autograd.function import (BackwardCFunction, Function, FunctionCtx,
                                      once_differentiable)
from graphc.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
from graphc.autograd.hooks import (detect_anomaly, inference_mode,
                                   is_inference_mode_enabled, set_detect_anomaly)

__all__ = ["Variable", "Function", "backward", "grad", "no_grad", "enable_grad",
           "set_grad_enabled", "is_grad_enabled", "inference_mode", "set_detect_anomaly",
           "detect_anomaly", "once_differentiable", "gradcheck", "gradgradcheck"]
