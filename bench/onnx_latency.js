// Batch-1 latency of an ONNX model in onnxruntime-node, 1 thread (bench/onnx_latency.sh runs it
// beside kdrt). Prints one line: "ort median US p99 US (RUNS runs)".
//   node bench/onnx_latency.js MODEL.onnx [RUNS] [IMAGES.idx3-ubyte.gz]
// Inputs are the first test images of Fashion-MNIST, normalised with its statistics (mean 0.2860,
// std 0.3530), one at a time; 200 warm-up runs first. onnxruntime-node comes from $KD_ORT_DIR
// (default .peers/ort, scripts/install-peers.sh).
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const ortDir = process.env.KD_ORT_DIR || path.join(__dirname, '..', '.peers', 'ort');
const ort = require(path.join(ortDir, 'node_modules', 'onnxruntime-node'));

async function main() {
    const [model, runsArg, imagesArg] = process.argv.slice(2);
    if (!model) throw new Error('usage: onnx_latency.js MODEL.onnx [RUNS] [IMAGES.idx3-ubyte.gz]');
    const runs = Number(runsArg || 5000);
    const raw = zlib.gunzipSync(fs.readFileSync(imagesArg || '/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz'));
    const n = Math.min(raw.readUInt32BE(4), 1000), img = raw.readUInt32BE(8) * raw.readUInt32BE(12);
    const inputs = [];
    for (let i = 0; i < n; i++) {
        const x = new Float32Array(img);
        for (let k = 0; k < img; k++) x[k] = (raw[16 + i * img + k] / 255 - 0.2860) / 0.3530;
        inputs.push(new ort.Tensor('float32', x, [1, 1, raw.readUInt32BE(8), raw.readUInt32BE(12)]));
    }
    const sess = await ort.InferenceSession.create(model, {
        intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential'});
    for (let i = 0; i < 200; i++) await sess.run({input: inputs[i % n]});
    const t = new Float64Array(runs);
    for (let i = 0; i < runs; i++) {
        const t0 = process.hrtime.bigint();
        await sess.run({input: inputs[i % n]});
        t[i] = Number(process.hrtime.bigint() - t0) / 1e3;
    }
    t.sort();
    const q = (p) => t[Math.min(runs - 1, Math.floor(p * runs))];
    console.log(`ort median ${q(0.5).toFixed(2)} us p99 ${q(0.99).toFixed(2)} us (${runs} runs)`);
}

main().catch((e) => {
    console.error(`onnx_latency.js: ${e.message}`);
    process.exit(1);
});
