// A one-node ONNX model (BatchNormalization, opset 15), encoded by hand as protobuf bytes so the
// benchmark needs neither a download nor the onnx Python package.
//
// Field numbers from onnx/onnx.proto3 (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto3):
//   ModelProto      ir_version=1 (int64), producer_name=2, graph=7, opset_import=8
//   OperatorSetId   domain=1, version=2
//   GraphProto      node=1, name=2, input=11, output=12
//   NodeProto       input=1, output=2, name=3, op_type=4, attribute=5
//   AttributeProto  name=1, f=2, i=3, type=20 (FLOAT=1, INT=2)
//   ValueInfoProto  name=1, type=2;  TypeProto tensor_type=1;  TypeProto.Tensor elem_type=1, shape=2
//   TensorShape     dim=1;  Dimension dim_value=1
// Wire types: 0 = varint, 2 = length-delimited, 5 = 32-bit.

const utf8 = new TextEncoder();

/** @param {number} v a non-negative integer below 2^53 */
function varint(v) {
  const out = [];
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

/** @param {number} field @param {number} v */
const intField = (field, v) => [...varint(field << 3), ...varint(v)];

/** @param {number} field @param {number[] | Uint8Array | string} body */
function bytesField(field, body) {
  const b = typeof body === "string" ? [...utf8.encode(body)] : [...body];
  return [...varint((field << 3) | 2), ...varint(b.length), ...b];
}

/** @param {number} field @param {number} v */
function floatField(field, v) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, v, true);
  return [...varint((field << 3) | 5), ...b];
}

/** ValueInfoProto for a float tensor of fixed `dims`. */
function floatTensorInfo(name, dims) {
  const shape = dims.flatMap((d) => bytesField(1, intField(1, d)));
  const tensorType = [...intField(1, 1 /* FLOAT */), ...bytesField(2, shape)];
  return [...bytesField(1, name), ...bytesField(2, bytesField(1, tensorType))];
}

/**
 * Model bytes: Y = BatchNormalization(X, scale, B, input_mean, input_var), all five as graph inputs.
 * With `training`, training_mode=1 and the outputs running_mean and running_var are added
 * (ONNX momentum convention: running = momentum * running + (1 - momentum) * batch, so torch's
 * momentum 0.1 is ONNX's 0.9; ONNX's running_var uses the biased batch variance).
 * @param {{ shape: readonly number[], training: boolean, eps?: number, momentum?: number }} o
 *   shape in ONNX order [N, C, ...spatial]; momentum in torch's convention (default 0.1)
 * @returns {Uint8Array}
 */
export function batchNormModel({ shape, training, eps = 1e-5, momentum = 0.1 }) {
  const c = shape[1];
  const inputs = ["X", "scale", "B", "input_mean", "input_var"];
  const outputs = training ? ["Y", "running_mean", "running_var"] : ["Y"];
  const attr = (name, body) => bytesField(5, [...bytesField(1, name), ...body]);
  const node = [
    ...inputs.flatMap((n) => bytesField(1, n)),
    ...outputs.flatMap((n) => bytesField(2, n)),
    ...bytesField(3, "bn"),
    ...bytesField(4, "BatchNormalization"),
    ...attr("epsilon", [...floatField(2, eps), ...intField(20, 1)]),
    ...attr("momentum", [...floatField(2, 1 - momentum), ...intField(20, 1)]),
    ...(training ? attr("training_mode", [...intField(3, 1), ...intField(20, 2)]) : []),
  ];
  const info = { X: shape, Y: shape };
  const graph = [
    ...bytesField(1, node),
    ...bytesField(2, "batchnorm"),
    ...inputs.flatMap((n) => bytesField(11, floatTensorInfo(n, info[n] ?? [c]))),
    ...outputs.flatMap((n) => bytesField(12, floatTensorInfo(n, info[n] ?? [c]))),
  ];
  const model = [
    ...intField(1, 8), // IR version 8 (ONNX 1.10+), enough for opset 15
    ...bytesField(2, "wasm-batchnorm bench"),
    ...bytesField(7, graph),
    ...bytesField(8, [...bytesField(1, ""), ...intField(2, 15)]),
  ];
  return Uint8Array.from(model);
}
