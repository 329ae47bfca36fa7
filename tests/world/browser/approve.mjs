// Approves a device login the way a person does: open the verification page, type the code and the user name,
// press "Approve", and wait for the confirmation. Usage: node approve.mjs <verification_uri> <user_code> <username>
// Prints one JSON line with what the page said; exits non-zero when the page did not confirm.
import { chromium } from 'playwright-core';

const [uri, userCode, username] = process.argv.slice(2);
if (!uri || !userCode || !username) {
  console.error('usage: approve.mjs <verification_uri> <user_code> <username>');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.PGRATOR_CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  // The test CA is not in Chromium's store; the page's certificate is the harness's own.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(uri, { timeout: 15000 });
  await page.fill('#user_code', userCode);
  await page.fill('#username', username);
  await Promise.all([page.waitForLoadState('load'), page.click('#approve')]);
  const text = (await page.textContent('body')) || '';
  if (process.env.PGRATOR_SCREENSHOT) await page.screenshot({ path: process.env.PGRATOR_SCREENSHOT });
  const approved = /device approved/i.test(text);
  console.log(JSON.stringify({ approved, text: text.trim().slice(0, 200) }));
  process.exit(approved ? 0 : 1);
} finally {
  await browser.close();
}
