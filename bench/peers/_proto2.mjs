import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import path from 'node:path';
const req=createRequire(import.meta.url);
const dir = path.dirname(req.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'))+'/';
tfwasm.setWasmPaths(dir);
tfwasm.setThreadsCount(1);
for (const b of ['cpu','wasm']) {
  await tf.setBackend(b); await tf.ready();
  console.log(tf.getBackend(), b==='wasm'? tfwasm.getThreadsCount():'');
  const x = tf.tensor(Float32Array.from({length:96},(_,i)=>Math.sin(i)), [2,4,4,3]);
  const {mean, variance} = tf.moments(x,[0,1,2]);
  const y = tf.batchNorm(x, mean, variance, tf.zeros([3]), tf.ones([3]), 1e-5);
  console.log(y.dataSync().slice(0,3), mean.dataSync());
  const g = tf.grads((x,w,b)=>{const m=tf.moments(x,[0,1,2]); return tf.batchNorm(x,m.mean,m.variance,b,w,1e-5);});
  const dy = tf.mul(tf.onesLike(x), tf.scalar(0.5));
  const [dx,dw,db] = g([x, tf.ones([3]), tf.zeros([3])], dy);
  console.log(dx.dataSync().slice(0,3), dw.dataSync(), db.dataSync());
}
