// Bytes to base64, and a PNG's size from its header, without a DOM (a service worker has none).

export function base64(bytes) {
  let binary = '';
  const step = 0x8000; // String.fromCharCode takes its arguments on the stack: stay well under
  for (let i = 0; i < bytes.length; i += step) {
    binary += String.fromCharCode(...bytes.subarray(i, i + step));
  }
  return btoa(binary);
}

/** Width and height from the IHDR chunk (bytes 16–23 of every PNG). */
export function pngSize(data) {
  const head = atob(data.slice(0, 32));
  const word = (at) => ((head.charCodeAt(at) << 24) | (head.charCodeAt(at + 1) << 16)
    | (head.charCodeAt(at + 2) << 8) | head.charCodeAt(at + 3)) >>> 0;
  return { width: word(16), height: word(20) };
}
