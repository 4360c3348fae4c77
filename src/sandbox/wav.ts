/**
 * Valid PCM WAV files, generated: a canonical 44-byte RIFF/WAVE header (`fmt ` chunk, PCM, then one
 * `data` chunk) and a sine tone, 16-bit little-endian samples.
 */
export interface ToneOptions {
  seconds: number;
  /** Tone frequency in Hz. */
  frequency: number;
  /** @defaultValue 8000 */
  sampleRate?: number;
  /** @defaultValue 1 (mono) */
  channels?: number;
  /** Peak amplitude from 0 to 1. @defaultValue 0.3 */
  amplitude?: number;
}

const HEADER_BYTES = 44;
const BITS = 16;

export function sineWav(opts: ToneOptions): Buffer {
  const rate = opts.sampleRate ?? 8000;
  const channels = opts.channels ?? 1;
  const amplitude = Math.max(0, Math.min(1, opts.amplitude ?? 0.3)) * 0x7fff;
  const frames = Math.round(opts.seconds * rate);
  const blockAlign = channels * (BITS / 8);
  const dataBytes = frames * blockAlign;
  const buf = Buffer.alloc(HEADER_BYTES + dataBytes);

  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(HEADER_BYTES - 8 + dataBytes, 4); // size of everything after this field
  buf.write('WAVE', 8, 'ascii');
  buf.write('fmt ', 12, 'ascii');
  buf.writeUInt32LE(16, 16); // fmt chunk size for PCM
  buf.writeUInt16LE(1, 20); // audio format 1 = PCM
  buf.writeUInt16LE(channels, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * blockAlign, 28); // byte rate
  buf.writeUInt16LE(blockAlign, 32);
  buf.writeUInt16LE(BITS, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(dataBytes, 40);

  // A short fade in and out, so the tone starts and ends without a click.
  const fade = Math.max(1, Math.min(frames / 2, rate * 0.02));
  for (let i = 0; i < frames; i++) {
    const envelope = Math.min(1, i / fade, (frames - 1 - i) / fade);
    const sample = Math.round(amplitude * envelope * Math.sin((2 * Math.PI * opts.frequency * i) / rate));
    for (let c = 0; c < channels; c++) buf.writeInt16LE(sample, HEADER_BYTES + i * blockAlign + c * 2);
  }
  return buf;
}
