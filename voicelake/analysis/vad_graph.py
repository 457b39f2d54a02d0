"""Silero v5's ONNX graph for one sample rate, with its convolutions as batched matrix products.

The shipped graph chooses its 8 kHz or 16 kHz branch with an ``If`` on the ``sr`` input, then runs an
STFT (a Conv1d with a fixed basis) and four Conv1d layers per window.  onnxruntime's CPU Conv walks the
batch one window at a time, each a tiny GEMM over the window's 4 STFT frames, and those convolutions
were 70 % of the model's time.  Here each Conv with a kernel longer than 1 becomes the same arithmetic
as one MatMul over every window and frame of the batch: pad, gather the kernel's taps side by side
(``Slice`` + ``Concat``), multiply by the kernel laid out as a matrix, add the bias.  The weights,
the LSTM and every other node are the shipped model's, unchanged; outputs agree with the shipped
model to about 2e-6 (tests/test_vad.py), and each window's row is computed the same way whatever
else shares the batch.

Built once per process from the verified model bytes, in memory; needs the ``onnx`` package.
"""
from __future__ import annotations

import numpy as np


def branch_for_rate(model, rate: int):
    """The subgraph the shipped model's top ``If`` runs for ``sr == rate``."""
    from onnx import numpy_helper

    nodes = {n.op_type: n for n in model.graph.node}
    compared = int(numpy_helper.to_array(nodes["Constant"].attribute[0].t))
    branches = {a.name: a.g for a in nodes["If"].attribute}
    return branches["then_branch" if rate == compared else "else_branch"]


def single_rate_model(data: bytes, rate: int, window: int, context: int) -> bytes:
    """The shipped model reduced to its ``rate`` branch (inputs ``input`` and ``state``), its
    convolutions rewritten as batched MatMuls; serialized ONNX."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(data)
    branch = branch_for_rate(model, rate)
    inputs = [i for i in model.graph.input if i.name in ("input", "state")]
    outputs = [helper.make_tensor_value_info(o.name, TensorProto.FLOAT, None) for o in branch.output]
    weights = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in branch.node
               if n.op_type == "Constant" and n.attribute[0].name == "value"}
    convs = [n for n in branch.node if n.op_type == "Conv" and _attrs(n)["kernel_shape"][0] > 1]

    def graph(nodes, extra=(), initializers=()):
        g = helper.make_graph(nodes, f"silero_{rate}", inputs,
                              outputs + [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                                         for n in extra], initializer=list(initializers))
        return helper.make_model(g, opset_imports=model.opset_import, ir_version=model.ir_version)

    lengths = _conv_input_lengths(graph(list(branch.node), [c.input[0] for c in convs]), convs,
                                  window + context)
    rewritten, initializers = [], []

    def constant(values, dtype=np.int64) -> str:
        name = f"batched_{len(initializers)}"
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(np.array(values, dtype)), name))
        return name

    def node(op, inputs, **attrs) -> str:
        out = f"batched_{op.lower()}_{len(rewritten)}"
        rewritten.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    for n in branch.node:
        if n not in convs:
            rewritten.append(n)
            continue
        a = _attrs(n)
        if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1])):
            raise ValueError(f"{n.name}: only plain convolutions can be rewritten")
        kernel, stride, (before, after) = a["kernel_shape"][0], a["strides"][0], a["pads"]
        w = weights[n.input[1]]  # out, in, kernel
        out_ch, in_ch, _ = w.shape
        frames = (lengths[n.input[0]] + before + after - kernel) // stride + 1
        x = n.input[0]
        if before or after:
            x = node("Pad", [x, constant([0, 0, before, 0, 0, after])], mode="constant")
        x = node("Transpose", [x], perm=[0, 2, 1])  # batch, time, channels
        if in_ch == 1 and kernel == 2 * stride:  # the STFT: each frame is two hops side by side
            x = node("Slice", [x, constant([0]), constant([stride * (frames + 1)]), constant([1])])
            hops = node("Reshape", [x, constant([0, frames + 1, stride])])
            first = node("Slice", [hops, constant([0]), constant([frames]), constant([1])])
            second = node("Slice", [hops, constant([1]), constant([frames + 1]), constant([1])])
            columns = node("Concat", [first, second], axis=2)
            matrix = w[:, 0, :].T
        else:  # the kernel's taps side by side: (batch, frames, kernel * channels), tap-major
            taps = [node("Slice", [x, constant([j]), constant([j + stride * (frames - 1) + 1]),
                                   constant([1]), constant([stride])]) for j in range(kernel)]
            columns = node("Concat", taps, axis=2)
            matrix = w.transpose(2, 1, 0).reshape(kernel * in_ch, out_ch)
        y = node("MatMul", [columns, constant(matrix, np.float32)])
        if len(n.input) > 2 and n.input[2]:
            y = node("Add", [y, n.input[2]])
        rewritten.append(helper.make_node("Transpose", [y], [n.output[0]], perm=[0, 2, 1]))
    return graph(rewritten, initializers=initializers).SerializeToString()


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv_input_lengths(model, convs, width: int) -> dict[str, int]:
    """The time length of each convolution's input, for windows of ``width`` samples (the graph's
    padding and strides decide them; one probe run reads them)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    probe = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    found = probe.run(None, {"input": np.zeros((2, width), np.float32),
                             "state": np.zeros((2, 2, 128), np.float32)})
    return {c.input[0]: r.shape[-1] for c, r in zip(convs, found[len(model.graph.output) - len(convs):], strict=True)}
