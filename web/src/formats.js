// Files the page offers for download, matching `voxprint embed` outputs.

// Rows of a result: [values] (whole) or one per window (sliding).
export function embeddingRows(result) {
  if (result.mode === 'sliding') return result.windows.map((window) => window.embedding);
  return [result.embedding];
}

// A .npy file (format 1.0): little-endian float32, C order; shape (D,) for a
// whole-file embedding, (windows, D) for sliding windows. null (NaN on the
// server) is written as NaN.
export function encodeNpy(result) {
  const rows = embeddingRows(result);
  const dim = rows.length ? rows[0].length : 0;
  const shape = result.mode === 'sliding' ? `(${rows.length}, ${dim})` : `(${dim},)`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  // magic (6) + version (2) + header length (2) + header + '\n', padded to 64.
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const dataOffset = 10 + header.length;
  const buffer = new ArrayBuffer(dataOffset + rows.length * dim * 4);
  const bytes = new Uint8Array(buffer);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00]);
  const view = new DataView(buffer);
  view.setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) bytes[10 + i] = header.charCodeAt(i);
  let offset = dataOffset;
  for (const row of rows) {
    for (const value of row) {
      view.setFloat32(offset, value === null ? NaN : value, true);
      offset += 4;
    }
  }
  return buffer;
}

function csvNumber(value) {
  return value === null ? 'nan' : String(Number(value.toPrecision(9)));
}

// CSV: "dim_0,...,dim_N" (sliding: "start_s,end_s,covered_end_s,padded,
// dim_0,...", as `voxprint embed --format csv`).
export function encodeCsv(result) {
  const rows = embeddingRows(result);
  const dim = rows.length ? rows[0].length : 0;
  const sliding = result.mode === 'sliding';
  const names = Array.from({ length: dim }, (_, d) => `dim_${d}`);
  const lines = [(sliding ? ['start_s', 'end_s', 'covered_end_s', 'padded', ...names] : names).join(',')];
  rows.forEach((row, r) => {
    const cells = row.map(csvNumber);
    if (sliding) {
      const window = result.windows[r];
      cells.unshift(
        csvNumber(window.start_s),
        csvNumber(window.end_s),
        csvNumber(window.padded ? window.covered_end_s : window.end_s),
        window.padded ? '1' : '0',
      );
    }
    lines.push(cells.join(','));
  });
  return lines.join('\n') + '\n';
}

export function download(name, content, type) {
  const url = URL.createObjectURL(new Blob([content], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function baseName(path) {
  const name = String(path || 'audio').split(/[\\/]/).pop();
  return name.replace(/\.[^.]+$/, '') || 'audio';
}

// Cosine similarity in double precision; 0 when either vector is all zeros.
export function cosine(a, b) {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

// FFmpeg's demuxer and decoder names, as people call the formats.
const CONTAINERS = {
  wav: 'WAV',
  w64: 'Wave64',
  aiff: 'AIFF',
  caf: 'CAF',
  au: 'Sun AU',
  flac: 'FLAC',
  mp3: 'MP3',
  ogg: 'Ogg',
  'mov,mp4,m4a,3gp,3g2,mj2': 'MP4/M4A',
  'matroska,webm': 'WebM/Matroska',
  aac: 'AAC (ADTS)',
  asf: 'ASF/WMA',
};
const CODECS = {
  pcm_u8: '8-bit PCM',
  pcm_s16le: '16-bit PCM',
  pcm_s16be: '16-bit PCM',
  pcm_s24le: '24-bit PCM',
  pcm_s32le: '32-bit PCM',
  pcm_f32le: '32-bit float PCM',
  pcm_f64le: '64-bit float PCM',
  flac: 'FLAC',
  mp3float: 'MP3',
  mp3: 'MP3',
  aac: 'AAC',
  opus: 'Opus',
  libopus: 'Opus',
  vorbis: 'Vorbis',
  alac: 'ALAC',
};

// "WAV, 16-bit PCM"; FFmpeg's names for anything else.
export function friendlyFormat(container, codec) {
  const box = CONTAINERS[container] || container;
  const coding = CODECS[codec] || codec;
  return box === coding ? box : `${box}, ${coding}`;
}

// What a JSON download carries besides the result: where the numbers came
// from (model checksum, voxprint version, device, window settings).
export function withProvenance(result, provenance) {
  return { ...result, provenance };
}
