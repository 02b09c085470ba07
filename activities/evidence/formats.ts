/** The media type of an archived file, from its extension (what Croissant's encodingFormat and OMS want). */
import path from 'node:path';

const BY_EXTENSION: Record<string, string> = {
  '.csv': 'text/csv',
  '.tsv': 'text/tab-separated-values',
  '.txt': 'text/plain',
  '.md': 'text/markdown',
  '.html': 'text/html',
  '.xml': 'application/xml',
  '.json': 'application/json',
  '.jsonl': 'application/jsonlines',
  '.ndjson': 'application/jsonlines',
  '.yaml': 'application/yaml',
  '.yml': 'application/yaml',
  '.parquet': 'application/x-parquet',
  '.arrow': 'application/vnd.apache.arrow.file',
  '.avro': 'application/avro',
  '.safetensors': 'application/octet-stream',
  '.gguf': 'application/octet-stream',
  '.npy': 'application/octet-stream',
  '.pt': 'application/octet-stream',
  '.bin': 'application/octet-stream',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.tar': 'application/x-tar',
  '.zst': 'application/zstd',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.wav': 'audio/wav',
  '.mp3': 'audio/mpeg',
  '.flac': 'audio/flac',
  '.mp4': 'video/mp4',
  '.pdf': 'application/pdf',
};

export function encodingFormatOf(archivePath: string): string {
  return BY_EXTENSION[path.posix.extname(archivePath).toLowerCase()] ?? 'application/octet-stream';
}
