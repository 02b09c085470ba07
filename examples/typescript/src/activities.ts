/**
 * The training job's own activity. Here it writes a small, deterministic "model" (config, weights
 * in two files, a tokenizer, metrics); yours runs the real training and returns where it saved the
 * checkpoint. Only the directory's path goes back to the workflow, never the bytes.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { heartbeat } from '@temporalio/activity';

export interface TrainInput {
  runId: string;
  /** Where checkpoints go, on the worker's host. */
  outputDir: string;
  epochs: number;
}

/** Deterministic pseudo-random bytes standing in for trained weights. */
function weights(bytes: number, seed: string): Buffer {
  const out = Buffer.alloc(bytes);
  for (let off = 0, i = 0; off < bytes; i++)
    off += crypto.createHash('sha256').update(`${seed}/${i}`).digest().copy(out, off);
  return out;
}

export async function trainModel(input: TrainInput): Promise<string> {
  const dir = path.resolve(input.outputDir, input.runId);
  await fs.mkdir(path.join(dir, 'tokenizer'), { recursive: true });
  const losses: number[] = [];
  for (let epoch = 1; epoch <= input.epochs; epoch++) {
    losses.push(Number((2 / epoch).toFixed(4)));
    heartbeat({ epoch });
  }
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ layers: 4, hidden: 256, epochs: input.epochs }));
  await fs.writeFile(
    path.join(dir, 'model-00001-of-00002.safetensors'),
    weights(3 * 1024 * 1024 + 7, `${input.runId}/1`),
  );
  await fs.writeFile(path.join(dir, 'model-00002-of-00002.safetensors'), weights(1024 * 1024 + 5, `${input.runId}/2`));
  await fs.writeFile(path.join(dir, 'tokenizer', 'vocab.txt'), 'hello\nworld\n');
  await fs.writeFile(path.join(dir, 'metrics.json'), JSON.stringify({ loss: losses }));
  return dir;
}
