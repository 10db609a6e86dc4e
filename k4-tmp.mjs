import { Worker, isMainThread } from 'node:worker_threads';
import koffi from 'koffi';
function jswork(){ let x=0; for (let i=0;i<3e8;i++) x=(x+i*7)%1000003; return x; }
function kwork(){ const libc = koffi.load(null); const f = libc.func('int getppid()'); for (let i=0;i<400000;i++) f(); }
const which = process.argv[2];
const work = which === 'js' ? jswork : kwork;
if (isMainThread) {
  let t = Date.now(); work(); console.log(which, 'main alone', Date.now()-t, 'ms');
  const w = new Worker(new URL(import.meta.url), { argv: [which] });
  await new Promise(r => setTimeout(r, 300));
  t = Date.now(); work(); console.log(which, 'main while worker runs', Date.now()-t, 'ms');
  await new Promise(r => w.on('exit', r));
} else { const t = Date.now(); work(); console.log(which, 'worker', Date.now()-t, 'ms'); }
