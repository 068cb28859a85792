"""Outputs computed into an input's own buffer: a loop-IR pass for callers that let a
program overwrite some of its inputs.

A compiled training step returns the new values of the parameters and optimizer state
it updates; its caller used to copy each into the tensor's array after the call.  When
the caller allows it (``pairs``: output position -> input position), the kernel that
computes such an output stores into the input's buffer instead, so the program updates
the array in place and the output *is* that input.  It is done only where the result
cannot differ from computing into a fresh buffer:

- the output is a plain ``output`` buffer returned once, stored by one elementwise loop
  kernel (one ``Store`` per iteration, the iterations covering the buffer once), and
  read by no kernel; the input is passed once, of the same dtype and size, and is not
  itself an output;
- that kernel reads the input only at the element it stores, and no later kernel reads
  the input (they would see the new value);
- inside the kernel, every statement reading an input that is overwritten runs before
  the store that overwrites it (the stores are moved after the other statements, and
  ordered among themselves where they read each other's inputs);
- the program cannot fail at run time (no checked index or divisor): a call that raises
  must leave its inputs as they were.

``write_in_place`` returns the rewritten program and the (output, input) positions it
made in place; the runtime returns the input array as the output for those
(``graphc.targets.plan.BufferPlan.in_place``).
"""
from __future__ import annotations

import dataclasses
import math

from graphc.codegen import loops as L


def write_in_place(program: L.Program, pairs) -> tuple:
    """``program`` with the outputs of ``pairs`` ((output position, input position),
    allowed by the caller) stored into their inputs where that is safe; returns
    (program, the pairs done)."""
    if not pairs or program.sites:
        return program, []
    writers = {}                        # kernel position -> [(pair, store statement index)]
    for pair in pairs:
        found = _writer(program, *pair)
        if found is not None:
            writers.setdefault(found[0], []).append((pair, found[1]))
    kernels, outputs, buffers, done = list(program.kernels), list(program.outputs), \
        dict(program.buffers), []
    for position, candidates in writers.items():
        kernel, made = _rewrite(program, kernels[position], candidates)
        if not made:
            continue
        kernels[position] = kernel
        for out, inp in made:
            del buffers[program.outputs[out]]
            outputs[out] = program.inputs[inp]
            done.append((out, inp))
    if not done:
        return program, []
    return dataclasses.replace(program, kernels=kernels, outputs=outputs,
                               buffers=buffers), sorted(done)


def _writer(program: L.Program, out: int, inp: int):
    """(kernel position, store statement index) of the kernel that could store output
    ``out`` into input ``inp``, or None."""
    name, into = program.outputs[out], program.inputs[inp]
    info, target = program.buffers[name], program.buffers[into]
    if (info.kind != "output" or program.outputs.count(name) != 1 or name in program.inputs
            or program.inputs.count(into) != 1 or into in program.outputs
            or info.dtype != target.dtype or info.size != target.size):
        return None
    stored_by = [i for i, k in enumerate(program.kernels) if name in k.outputs]
    if len(stored_by) != 1:
        return None
    position = stored_by[0]
    kernel = program.kernels[position]
    if not isinstance(kernel, L.LoopKernel) or kernel.serial or \
            math.prod(extent for _, extent in kernel.parallel) != info.size:
        return None
    for i, k in enumerate(program.kernels):
        if i != position and (name in k.inputs or into in k.outputs or
                              (i > position and into in k.inputs)):
            return None
    stores = [i for i, s in enumerate(kernel.body)
              if isinstance(s, L.Store) and s.buffer == name]
    if len(stores) != 1:
        return None
    store = kernel.body[stores[0]]
    if store.loops or store.accumulate:
        return None
    for statement in kernel.body:
        for load in _loads(statement):
            if load.buffer == name or (load.buffer == into and load.offset != store.offset):
                return None
    return position, stores[0]


def _rewrite(program: L.Program, kernel: L.LoopKernel, candidates) -> tuple:
    """``kernel`` with the stores of ``candidates`` writing into their inputs, after
    every other statement and each after the stores that read its input; returns
    (kernel, pairs made), dropping stores whose order cannot be met (a cycle)."""
    reads = {index: {load.buffer for load in _loads(kernel.body[index])}
             for _, index in candidates}
    into = {index: program.inputs[inp] for (_, inp), index in candidates}
    order, left = [], {index for _, index in candidates}
    while left:
        # A store may go next when no store still waiting reads what it overwrites.
        ready = [i for i in sorted(left)
                 if not any(into[i] in reads[j] for j in left if j != i)]
        if not ready:
            left.discard(max(left))        # a cycle: that output stays out of place
            continue
        order += ready
        left -= set(ready)
    chosen = set(order)
    body = [s for i, s in enumerate(kernel.body) if i not in chosen]
    body += [dataclasses.replace(kernel.body[i], buffer=into[i]) for i in order]
    renamed = {program.outputs[out]: into[index] for (out, _), index in candidates
               if index in chosen}
    made = [pair for pair, index in candidates if index in chosen]
    return dataclasses.replace(kernel, body=body,
                               outputs=[renamed.get(b, b) for b in kernel.outputs]), made


def _loads(node):
    """Every ``Load`` in a statement or expression (offsets included)."""
    if isinstance(node, L.Load):
        yield node
    if isinstance(node, tuple):
        for item in node:
            yield from _loads(item)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            yield from _loads(getattr(node, f.name))
