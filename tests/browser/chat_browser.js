// Two headless browsers open the dog-chat page, answer the name prompt, and chat.
const puppeteer = require('puppeteer-core');
const base = process.argv[2];
async function user(name) {
  const browser = await puppeteer.launch({ executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--no-first-run'] });
  const page = await browser.newPage();
  page.on('dialog', d => d.accept(name));
  await page.goto(base + '/', { waitUntil: 'load', timeout: 10000 });
  return { browser, page };
}
(async () => {
  const a = await user('alice');
  const b = await user('bob');
  const c = await user('carol');
  await new Promise(r => setTimeout(r, 500));
  await a.page.type('#input', 'hello from a real browser');
  await a.page.click('footer button');
  await c.page.waitForFunction(() => [...document.querySelectorAll('.msg span')].some(s => s.textContent === 'hello from a real browser'), { timeout: 5000 });
  await b.page.type('#input', '/w carol just for you');
  await b.page.click('footer button');
  await c.page.waitForFunction(() => document.querySelector('.msg.whisper') !== null, { timeout: 5000 });
  const users = await c.page.$$eval('#users figure', fs => fs.map(f => f.textContent));
  console.log('carol sees users:', JSON.stringify(users));
  if (process.env.DOG_SCREENSHOT) await c.page.screenshot({ path: process.env.DOG_SCREENSHOT });
  for (const u of [a, b, c]) await u.browser.close();
  console.log('browser chat ok');
})().catch(e => { console.error(e); process.exit(1); });
