import { batchNormModel } from './onnx-model.js';
import { createRequire } from 'node:module';
import path from 'node:path';
const shape=[2,3,4,4]; const n=96;
const x=Float32Array.from({length:n},(_,i)=>Math.sin(i));
const c=()=>new Float32Array(3);
const feeds=(ort)=>({X:new ort.Tensor('float32',x,shape),scale:new ort.Tensor('float32',Float32Array.of(1,1,1),[3]),B:new ort.Tensor('float32',c(),[3]),input_mean:new ort.Tensor('float32',c(),[3]),input_var:new ort.Tensor('float32',Float32Array.of(1,1,1),[3])});
for (const which of ['onnxruntime-node','onnxruntime-web']) {
  const ort = await import(which);
  if (which==='onnxruntime-web') { ort.env.wasm.numThreads=1; const req=createRequire(import.meta.url); ort.env.wasm.wasmPaths = path.dirname(req.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'))+'/'; }
  for (const training of [false,true]) {
    try {
      const s = await ort.InferenceSession.create(batchNormModel({shape,training}), {executionProviders:[which==='onnxruntime-node'?'cpu':'wasm'], intraOpNumThreads:1, interOpNumThreads:1});
      const r = await s.run(feeds(ort));
      console.log(which, training, Object.keys(r), r.Y.data.slice(0,4), r.running_mean?.data, r.running_var?.data);
    } catch(e) { console.log(which, training, 'ERR', e.message); }
  }
}
