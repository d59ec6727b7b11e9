// The pages' microphone button: MediaRecorder -> a File (WebM/Opus where
// the browser can), handed over like a picked one.
import { announce } from './dom.js';

// `button` starts and stops a recording, `state` shows its length; the
// recording goes to onFile(File), onError(Error) when the browser cannot record.
export function wireRecorder(button, state, onFile, onError) {
  const idleLabel = button.textContent;
  let recorder = null;
  let timer = null;
  button.addEventListener('click', async () => {
    if (recorder) {
      recorder.stop();
      return;
    }
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      onError(new Error('Recording needs a browser with MediaRecorder and a secure page (https or localhost).'));
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      onError(new Error(`Microphone not available: ${error.message || error.name}`));
      return;
    }
    const type = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4'].find((t) =>
      MediaRecorder.isTypeSupported(t),
    );
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    const chunks = [];
    recorder.ondataavailable = (event) => event.data.size && chunks.push(event.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((track) => track.stop());
      clearInterval(timer);
      const mime = recorder.mimeType || 'audio/webm';
      const extension = mime.includes('ogg') ? 'ogg' : mime.includes('mp4') ? 'm4a' : 'webm';
      const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
      recorder = null;
      button.textContent = idleLabel;
      button.classList.remove('recording');
      state.textContent = '';
      onFile(new File(chunks, `recording-${stamp}.${extension}`, { type: mime.split(';')[0] }));
    };
    const begin = performance.now();
    recorder.start(250);
    button.textContent = '■ Stop recording';
    button.classList.add('recording');
    announce('Recording');
    timer = setInterval(() => {
      state.textContent = `recording… ${((performance.now() - begin) / 1000).toFixed(1)} s`;
    }, 100);
  });
}
