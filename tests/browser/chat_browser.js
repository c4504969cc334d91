// Three headless browsers open the dog-chat page, answer the name prompt, and chat.
//   node chat_browser.js URL_ALICE [URL_BOB [URL_CAROL]]   (missing URLs: the previous one)
// Given different nodes' front doors, the users sit on different nodes: every check below then
// crosses the cluster (joins, the user list built by gossip, a broadcast, a whisper).
const puppeteer = require('puppeteer-core');
const urls = process.argv.slice(2);
const url = (i) => urls[Math.min(i, urls.length - 1)];
const T = 15000;  // generous bound for each wait; nothing waits on a fixed delay

async function user(name, base) {
  const browser = await puppeteer.launch({ executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--no-first-run'] });
  const page = await browser.newPage();
  page.on('dialog', d => d.accept(name));
  await page.goto(base + '/', { waitUntil: 'load', timeout: T });
  // Ready: the page heard the echo of its own req:connected (its Replica has the socket).
  await page.waitForFunction(n => [...document.querySelectorAll('.announce')].some(a => a.textContent === n + ' has connected'),
    { timeout: T }, name);
  console.log(`${name} connected via ${base}`);
  return { name, browser, page };
}
const sees = (u, text) => u.page.waitForFunction(t => [...document.querySelectorAll('.msg span')].some(s => s.textContent === t),
  { timeout: T }, text);
const lists = (u, names) => u.page.waitForFunction(ns => {
  const shown = [...document.querySelectorAll('#users figure')].map(f => f.dataset.user);
  return ns.every(n => shown.includes(n));
}, { timeout: T }, names);

(async () => {
  const a = await user('alice', url(0));
  const b = await user('bob', url(1));
  const c = await user('carol', url(2));
  // Joins and the gossip-built user list reach across nodes.
  await lists(a, ['bob', 'carol']);
  await lists(c, ['alice', 'bob']);
  await a.page.type('#input', 'hello from a real browser');
  await a.page.click('footer button');
  for (const u of [a, b, c]) await sees(u, 'hello from a real browser');
  await b.page.type('#input', '/w carol just for you');
  await b.page.click('footer button');
  await c.page.waitForFunction(() => [...document.querySelectorAll('.msg.whisper span')].some(s => s.textContent === 'just for you'),
    { timeout: T });
  // Bob's next broadcast reaches alice after his whisper would have (one sender, one order).
  await b.page.type('#input', 'after the whisper');
  await b.page.click('footer button');
  await sees(a, 'after the whisper');
  const leaked = await a.page.$$eval('.msg span', ss => ss.some(s => s.textContent === 'just for you'));
  if (leaked) throw new Error('alice saw the whisper to carol');
  const users = await c.page.$$eval('#users figure', fs => fs.map(f => f.textContent));
  console.log('carol sees users:', JSON.stringify(users));
  if (process.env.DOG_SCREENSHOT) await c.page.screenshot({ path: process.env.DOG_SCREENSHOT });
  for (const u of [a, b, c]) await u.browser.close();
  console.log('browser chat ok');
})().catch(e => { console.error(e); process.exit(1); });
