import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
await tf.setBackend(process.argv[2] ?? 'wasm'); await tf.ready();
const student = tf.sequential({layers:[tf.layers.dense({units:32, activation:'relu', inputShape:[64]}), tf.layers.dense({units:10})]});
const x = tf.randomNormal([64,64]); const t = tf.randomNormal([64,10]); const y = tf.tensor1d(Array.from({length:64},(_, i)=>i%10),'int32');
const T=4, alpha=0.9, B=64;
const p = tf.softmax(tf.div(t,T)); const C = tf.keep(tf.add(tf.mul(p, alpha*T), tf.mul(tf.oneHot(y,10),1-alpha)));
const scale = tf.tensor3d([1/T, 1], [2,1,1]); const wts = tf.tensor3d([alpha*T*T, 1-alpha],[2,1,1]); const gw = tf.tensor3d([alpha*T, 1-alpha],[2,1,1]);
const kd = tf.customGrad((s, c, save) => {
  const z = tf.mul(tf.stack([s, s]), scale); // [2,B,K]
  const m = tf.max(z, -1, true); const e = tf.exp(tf.sub(z, m)); const se = tf.sum(e, -1, true);
  const lse = tf.add(tf.log(se), m);
  const n = s.shape[0];
  const value = tf.div(tf.sub(tf.sum(tf.mul(lse, wts)), tf.sum(tf.mul(c, s))), n);
  save([e, se, c]);
  return { value, gradFunc: (dy, saved) => { const [e, se, c] = saved;
     const g = tf.sub(tf.sum(tf.mul(tf.div(e, se), gw), 0), c);
     return [tf.mul(g, tf.div(dy, n)), tf.zerosLike(c)]; } };
});
const vars = student.trainableWeights.map(w => w.read());
const sizes = vars.map(v => v.size);
const total = sizes.reduce((a,b)=>a+b,0);
const m1 = tf.variable(tf.zeros([total])), v1 = tf.variable(tf.zeros([total]));
let t_ = 0; const b1=0.9,b2=0.999,eps=1e-7,lr=0.001;
function step(){
  return tf.tidy(()=>{
    const {value, grads} = tf.variableGrads(()=>kd(student.apply(x,{training:true}), C), vars);
    t_++;
    const g = tf.concat(vars.map(v => grads[v.name].reshape([-1])));
    const mn = tf.add(tf.mul(m1, b1), tf.mul(g, 1-b1)); const vn = tf.add(tf.mul(v1, b2), tf.mul(tf.square(g), 1-b2));
    m1.assign(mn); v1.assign(vn);
    const c2 = Math.sqrt(1-b2**t_); const lrt = lr*c2/(1-b1**t_);
    const upd = tf.mul(tf.div(mn, tf.add(tf.sqrt(vn), eps*c2)), lrt);
    const parts = tf.split(upd, sizes);
    vars.forEach((v,i)=> v.assign(tf.sub(v, parts[i].reshape(v.shape))));
    return value;
  });
}
for(let i=0;i<50;i++) step().dispose();
const before = tf.memory().numTensors;
const pr = await tf.profile(()=>{ step().dispose(); });
const counts={}; for (const k of pr.kernels) counts[k.name]=(counts[k.name]??0)+1;
console.log('kernels/step', pr.kernels.length, JSON.stringify(counts), 'tensors', before, tf.memory().numTensors);
const N=2000; const t0=performance.now(); for(let i=0;i<N;i++) step().dispose(); const dt=(performance.now()-t0)/N;
console.log('ms/step', dt.toFixed(3), 'samples/s', (64/dt*1000).toFixed(0));
