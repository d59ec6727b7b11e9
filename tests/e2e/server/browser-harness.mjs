// What every browser test of the page needs: the system's Chromium driven
// by playwright-core (nothing downloads a browser), a page on a running
// `voxprint serve` that collects script errors, and the layout and colour
// checks (no sideways scrolling, WCAG AA contrast). Exits 77 (CTest skip)
// when Chromium or playwright-core is absent.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { requireOrSkip } from './harness.mjs';

const chromiumPath = process.env.VOXPRINT_CHROMIUM || '/usr/bin/chromium';
requireOrSkip(existsSync(chromiumPath),
  `Chromium not found at ${chromiumPath} (apt-get install chromium, or set VOXPRINT_CHROMIUM)`);
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  requireOrSkip(false, 'playwright-core is not installed: run `npm ci` in tests/e2e/server');
}

// Opens `server`'s page in a fresh profile (1280 x 900, light scheme, a fake
// microphone) and waits until it reports the model ready. `problems`
// collects console errors and page exceptions; close() removes the profile.
export async function openPage(server) {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'voxprint-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
    colorScheme: 'light',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // A synthetic microphone (a beep) for the recording tests.
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
    ],
  });
  await context.grantPermissions(['microphone', 'clipboard-read', 'clipboard-write'], { origin: server.url });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(120000);
  const problems = [];
  page.on('console', (message) => {
    // Chromium logs every non-2xx XHR as an error; the tests provoke some.
    if (message.type() === 'error' && !/Failed to load resource/.test(message.text()))
      problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`exception: ${error.message}`));
  await page.goto(server.url);
  await page.waitForFunction(() => document.getElementById('health').textContent === 'ready');
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { page, context, problems, close };
}

// How far the page scrolls sideways now, measured at once (before charts
// catch up with a new size: the first frame a user sees must not scroll
// either), and the first elements that stick out.
export async function sidewaysOverflow(page) {
  return page.evaluate(() => ({
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    wide: [...document.querySelectorAll('body *')]
      .filter((element) => element.getBoundingClientRect().right > window.innerWidth + 0.5)
      .map((element) => element.id || element.className || element.tagName)
      .slice(0, 5),
  }));
}

// Contrast of text (4.5:1) and field borders (3:1) against what is behind
// them, computed in the page from the rendered colours (WCAG 2 luminance).
export async function contrastFailures(page) {
  return page.evaluate(() => {
    const parse = (text) => {
      const m = text.match(/rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)/);
      return m ? [Number(m[1]), Number(m[2]), Number(m[3]), m[4] === undefined ? 1 : Number(m[4])] : null;
    };
    const background = (element) => {
      for (let node = element; node; node = node.parentElement) {
        const colour = parse(getComputedStyle(node).backgroundColor);
        if (colour && colour[3] > 0.5) return colour;
      }
      return [255, 255, 255, 1];
    };
    const luminance = ([r, g, b]) => {
      const channel = (v) => {
        const c = v / 255;
        return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    };
    const ratio = (a, b) => {
      const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
      return (x + 0.05) / (y + 0.05);
    };
    const failures = [];
    const visible = (element) => element.getClientRects().length > 0 && getComputedStyle(element).visibility !== 'hidden';
    const texts = document.querySelectorAll(
      '#health, .tabs button, .hint, .foot, .verdict, .similarity, .rule, .warning p, .error, label, legend, .file-name, dt, dd, button, h2, p',
    );
    for (const element of texts) {
      if (!visible(element) || element.disabled || !element.textContent.trim()) continue;
      const style = getComputedStyle(element);
      const value = ratio(parse(style.color), background(element));
      if (value < 4.5) failures.push(`${element.id || element.className || element.tagName} "${element.textContent.trim().slice(0, 30)}": ${value.toFixed(2)}`);
    }
    for (const element of document.querySelectorAll('input[type="number"], input[type="password"], select, .drop')) {
      if (!visible(element)) continue;
      const value = ratio(parse(getComputedStyle(element).borderTopColor), background(element.parentElement));
      if (value < 3) failures.push(`border of ${element.id}: ${value.toFixed(2)}`);
    }
    return failures;
  });
}
