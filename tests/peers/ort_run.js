// Runs an ONNX model in onnxruntime-node (installed by scripts/install-peers.sh) on raw float32
// inputs and writes its raw float32 outputs: the real-runtime half of tests/e2e/test_onnx_export.c.
//   node tests/peers/ort_run.js MODEL.onnx INPUT.f32 N C H W OUTPUT.f32 [threads]
// INPUT holds N images (C, H, W) little-endian float32; OUTPUT gets the "logits" output (N rows).
// Exit 0 done; 77 onnxruntime-node is not installed (prints "SKIP: ..."); 1 any error (printed).
// onnxruntime-node is looked for in $KD_ORT_DIR (default: .peers/ort of this source tree).
'use strict';
const fs = require('fs');
const path = require('path');

const ortDir = process.env.KD_ORT_DIR || path.join(__dirname, '..', '..', '.peers', 'ort');
let ort;
try {
    ort = require(path.join(ortDir, 'node_modules', 'onnxruntime-node'));
} catch (e) {
    console.log(`SKIP: onnxruntime-node is not installed in ${ortDir} (run scripts/install-peers.sh): ` +
                String(e.message).split('\n')[0]);
    process.exit(77);
}

async function main() {
    const a = process.argv.slice(2);
    if (a.length < 7) throw new Error('usage: ort_run.js MODEL.onnx INPUT.f32 N C H W OUTPUT.f32 [threads]');
    const [model, input] = a;
    const [n, c, h, w] = a.slice(2, 6).map(Number);
    const threads = Number(a[7] || 1);
    const buf = fs.readFileSync(input);
    const img = c * h * w;
    if (buf.length !== n * img * 4) throw new Error(`${input}: ${buf.length} bytes, expected ${n * img * 4}`);
    const x = new Float32Array(buf.buffer, buf.byteOffset, n * img);
    const sess = await ort.InferenceSession.create(model, {
        intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential'});
    const batch = 500;
    const t0 = process.hrtime.bigint();
    const parts = [];
    for (let b0 = 0; b0 < n; b0 += batch) {
        const nb = Math.min(batch, n - b0);
        const t = new ort.Tensor('float32', x.slice(b0 * img, (b0 + nb) * img), [nb, c, h, w]);
        const r = await sess.run({input: t});
        parts.push(Buffer.from(r.logits.data.buffer, r.logits.data.byteOffset, r.logits.data.byteLength));
    }
    fs.writeFileSync(a[6], Buffer.concat(parts));
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    console.log(`onnxruntime-node ${ort.env.versions.common}: ${model} on ${n} inputs in ${ms.toFixed(0)} ms`);
}

main().catch((e) => {
    console.error(`ort_run.js: ${e.message}`);
    process.exit(1);
});
