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

// CSV: "dim_0,...,dim_N" (sliding: "start_s,end_s,dim_0,...").
export function encodeCsv(result) {
  const rows = embeddingRows(result);
  const dim = rows.length ? rows[0].length : 0;
  const sliding = result.mode === 'sliding';
  const names = Array.from({ length: dim }, (_, d) => `dim_${d}`);
  const lines = [(sliding ? ['start_s', 'end_s', ...names] : names).join(',')];
  rows.forEach((row, r) => {
    const cells = row.map(csvNumber);
    if (sliding) cells.unshift(csvNumber(result.windows[r].start_s), csvNumber(result.windows[r].end_s));
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
