// Each token's log-probability given the ones before it, from llama.cpp (through the npm package
// node-llama-cpp, which ships llama.cpp prebuilt), to check Peregrine's prompt log-probabilities
// against an independent engine on the same token ids.
//
//   npm install node-llama-cpp@3            (in any scratch directory)
//   ./peregrine tokenize -m MODEL --ids-only "TEXT" > ids.json
//   node scripts/llamacpp-logprobs.mjs MODEL ids.json > llamacpp.json
//   ./peregrine generate -m MODEL -p "TEXT" -n 1 --temp 0 --json --prompt-logprobs 0 > peregrine.json
//
// Prints a JSON array: entry i is log p(token i + 1 | tokens 0..i), from the raw logits (all of the
// vocabulary's, so no sampling option applies), as peregrine.json's prompt_logprobs.
import {getLlama} from "node-llama-cpp";
import fs from "node:fs";

const [modelPath, idsFile] = process.argv.slice(2);
const ids = JSON.parse(fs.readFileSync(idsFile, "utf8"));
const llama = await getLlama({gpu: false});
const model = await llama.loadModel({modelPath});
const context = await model.createContext({contextSize: Math.max(512, ids.length + 1), batchSize: 512});
const sequence = context.getSequence();
const everyLogit = {temperature: 1, topK: 0, topP: 1, minP: 0}; // no filter: every logit comes back
const input = ids.map((token, i) => i < ids.length - 1
    ? [token, {generateNext: {logits: true, options: everyLogit}}]
    : token);
const output = await sequence.controlledEvaluate(input);
const logprobs = [];
for (let i = 0; i < ids.length - 1; i++) {
    const logits = output[i].next.logits;
    let max = -Infinity;
    for (const v of logits.values()) max = Math.max(max, v);
    let sum = 0;
    for (const v of logits.values()) sum += Math.exp(v - max);
    logprobs.push(logits.get(ids[i + 1]) - max - Math.log(sum));
}
console.log(JSON.stringify(logprobs));
