"""``graphc.nn.parallel`` (``torch.nn.parallel``): ``DataParallel`` over the devices
graphc computes on, and ``DistributedDataParallel`` over the processes of
``graphc.distributed`` (docs/distributed.md).

Eager graphc tensors live in host memory and one process computes on one device, so
``DataParallel`` has a single replica, exactly as PyTorch's does on a machine without
GPUs: it calls the wrapped module, and its state_dict keys carry the ``module.`` prefix
that checkpoints saved from a DataParallel model have.
"""
from __future__ import annotations

import contextlib

import graphc.distributed as dist
from graphc.autograd import engine
from graphc.context import is_grad_enabled, no_grad
from graphc.creation import zeros
from graphc.distributed.process_group import checked
from graphc.functional import cat
from graphc.nn.module import Module


class DataParallel(Module):
    """``DataParallel(module, device_ids=None, output_device=None, dim=0)``."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        self.module = module
        self.device_ids = [] if device_ids is None else list(device_ids)
        self.output_device = output_device
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


def data_parallel(module, inputs, device_ids=None, output_device=None, dim=0,
                  module_kwargs=None):
    """The functional form of ``DataParallel``: ``module(*inputs, **module_kwargs)``."""
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    return module(*inputs, **(module_kwargs or {}))


class _Bucket:
    """Parameters whose gradients are averaged by one all-reduce of their concatenation."""

    def __init__(self, params):
        self.params = params
        self.ready: set = set()            # ids of the parameters whose .grad is final
        self.work = None                   # the all-reduce in flight, and its buffer
        self.flat = None


class DistributedDataParallel(Module):
    """``DistributedDataParallel(module, device_ids=None, output_device=None, dim=0,
    broadcast_buffers=True, process_group=None, bucket_cap_mb=25,
    find_unused_parameters=False, gradient_as_bucket_view=False, ...)``.

    Every rank holds a replica of ``module``; rank 0's parameters and buffers are broadcast
    at construction (and the buffers before each forward with ``broadcast_buffers``) so the
    replicas start and stay equal.  During backward each parameter's post-accumulate hook
    marks it ready; when all of a bucket's parameters are, its gradients are concatenated,
    divided by the world size and all-reduced (SUM) without blocking, buckets always
    started in the same order on every rank (MPI needs the collectives in one order).  At
    the end of the backward pass (``engine.queue_callback``) the outstanding all-reduces
    are waited for and the averaged gradients written back into ``.grad``.

    ``device_ids``, ``output_device`` and ``dim`` are accepted for PyTorch's signature:
    one graphc process computes on one host device.  ``gradient_as_bucket_view`` is
    accepted and changes nothing observable here (the gradients are copied back), as are
    ``check_reduction`` (deprecated in PyTorch) and ``static_graph`` (a hint).
    ``init_sync=False`` skips the broadcast at construction, as PyTorch's.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0,
                 broadcast_buffers=True, process_group=None, bucket_cap_mb=25,
                 find_unused_parameters=False, check_reduction=False,
                 gradient_as_bucket_view=False, static_graph=False, init_sync=True):
        super().__init__()
        self._group = checked(process_group)    # before init_process_group: PyTorch's error
        self.module = module
        self.device_ids = [] if device_ids is None else list(device_ids)
        self.output_device = output_device
        self.dim = dim
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.require_backward_grad_sync = True
        if init_sync:
            with no_grad():
                for t in list(module.parameters()) + list(module.buffers()):
                    dist.broadcast(t, 0)
        cap = int(bucket_cap_mb * 1024 * 1024)
        self._params = [p for p in module.parameters() if p.requires_grad]
        self._buckets = _assign_buckets(self._params[::-1], cap)
        self._bucket_of = {id(p): b for b in self._buckets for p in b.params}
        # Whether the backward of this wrapper's last forward averages (not under no_sync);
        # cleared when that backward ends, so hooks left on a module wrapped again or
        # called directly do nothing.
        self._syncing = False
        self._callback_queued = False
        self._next = 0                 # the next bucket to start (they start in order)
        for p in self._params:
            p.register_post_accumulate_grad_hook(self._grad_ready)

    @property
    def bucket_count(self) -> int:
        """How many all-reduces a synchronised backward pass makes (for tests and tuning)."""
        return len(self._buckets)

    @contextlib.contextmanager
    def no_sync(self):
        """Forward passes made inside accumulate gradients locally, without all-reduce;
        the first synchronised backward after averages the accumulated sum."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def forward(self, *inputs, **kwargs):
        return self.run(self.module, *inputs, **kwargs)

    def run(self, forward, *inputs, **kwargs):
        """``forward(*inputs, **kwargs)`` (the wrapped module, or its compiled forward:
        ``graphc.compile(ddp)`` compiles only the module, since a compiled program would
        replay without the bookkeeping here), after the bookkeeping of a forward pass."""
        if self.broadcast_buffers:
            with no_grad():
                for b in self.module.buffers():
                    dist.broadcast(b, 0)
        # As in PyTorch, whether a step synchronises is decided by the forward pass.
        self._syncing = self.require_backward_grad_sync and is_grad_enabled()
        for b in self._buckets:
            b.ready.clear()
            b.work = b.flat = None
        self._next = 0
        return forward(*inputs, **kwargs)

    # ---- during backward ----------------------------------------------------------------
    def _grad_ready(self, param) -> None:
        if not self._syncing:
            return
        if not self._callback_queued:
            self._callback_queued = True
            engine.queue_callback(self._finish_backward)
        self._bucket_of[id(param)].ready.add(id(param))
        self._start_ready_buckets()

    def _start_ready_buckets(self) -> None:
        """Start the all-reduces of the complete buckets, in bucket order."""
        while self._next < len(self._buckets):
            b = self._buckets[self._next]
            if len(b.ready) < len(b.params):
                return
            self._start(b)
            self._next += 1

    def _start(self, b: _Bucket) -> None:
        with no_grad():
            parts = [(p.grad if p.grad is not None else zeros(p.shape, dtype=p.dtype))
                     .reshape(-1) for p in b.params]
            b.flat = cat(parts) if len(parts) > 1 else parts[0].clone()
            b.flat.div_(self._group.size)
        b.work = dist.all_reduce(b.flat, dist.ReduceOp.SUM, async_op=True)

    def _finish_backward(self) -> None:
        self._callback_queued = False
        self._syncing = False
        if self._next < len(self._buckets):
            missing = [i for i, p in enumerate(self._params)
                       if id(p) not in self._bucket_of[id(p)].ready]
            if not self.find_unused_parameters:
                self._wait_started()
                raise RuntimeError(
                    "DistributedDataParallel: parameters did not receive a gradient in this "
                    "backward pass, so their gradients cannot be averaged (PyTorch raises "
                    "\"Expected to have finished reduction in the prior iteration before "
                    "starting a new one\" at the next forward). This error indicates that "
                    "your module has parameters that were not used in producing loss. You "
                    "can enable unused parameter detection by passing the keyword argument "
                    "`find_unused_parameters=True` to "
                    "`torch.nn.parallel.DistributedDataParallel`, and by making sure all "
                    "`forward` function outputs participate in calculating loss. Parameter "
                    f"indices which did not receive grad for rank {self._group.rank}: "
                    + " ".join(map(str, missing)))
            # Unused parameters count as zero gradients on this rank.
            for i in missing:
                p = self._params[i]
                self._bucket_of[id(p)].ready.add(id(p))
            self._start_ready_buckets()
        self._wait_started()
        with no_grad():
            for b in self._buckets:
                offset = 0
                for p in b.params:
                    n = p.numel()
                    averaged = b.flat[offset:offset + n].reshape(p.shape)
                    if p.grad is None:
                        p.grad = averaged.clone()
                    else:
                        p.grad.copy_(averaged)
                    offset += n
                b.work = b.flat = None
                b.ready.clear()
        self._next = 0

    def _wait_started(self) -> None:
        for b in self._buckets:
            if b.work is not None:
                b.work.wait()


def _assign_buckets(params, cap_bytes: int) -> list:
    """Consecutive parameters (in the order given: last layers first) into buckets of at
    least ``cap_bytes`` or the end, as PyTorch's ``compute_bucket_assignment_by_size`` does
    for one dtype; a dtype change starts a bucket, since one buffer has one dtype."""
    buckets, current, size = [], [], 0
    for p in params:
        if current and p.dtype != current[0].dtype:
            buckets.append(_Bucket(current))
            current, size = [], 0
        current.append(p)
        size += p.numel() * p.element_size()
        if size >= cap_bytes:
            buckets.append(_Bucket(current))
            current, size = [], 0
    if current:
        buckets.append(_Bucket(current))
    return buckets
