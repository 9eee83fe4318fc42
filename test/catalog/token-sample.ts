/**
 * The sample docs/token-estimate.md measures the conservative estimate on, with each body's true
 * prompt tokens in OpenAI's chat format (3 per message + its role, content, tool calls and tool
 * call id, 3 to prime the reply, and the tools' JSON), counted by gpt-tokenizer 4.0.0 with
 * o200k_base (GPT-4o and later) and cl100k_base (GPT-4, GPT-3.5). The counts are written here
 * rather than computed, so the test needs no tokenizer package; test/catalog/estimate.test.ts
 * holds the estimate to them.
 */
import type { JsonObject } from '../../src/rules/decision.js';

export interface TokenSample {
  readonly name: string;
  readonly o200k: number;
  readonly cl100k: number;
  readonly body: JsonObject;
}

const u = (content: string): JsonObject => ({ role: 'user', content });

export const TOKEN_SAMPLE: readonly TokenSample[] = [
  { name: 'english prose', o200k: 93, cl100k: 93, body: { messages: [u(`The committee met on Tuesday to review the proposal for the new library wing. After a long discussion about the budget, the architects agreed to reduce the size of the reading room and to keep the original facade. Several members asked whether the construction would disturb the summer programme for children; the director promised that the work would pause during July and August. A final vote is expected next month, once the revised drawings have been circulated to everyone.`)] } },
  { name: 'english chat', o200k: 71, cl100k: 74, body: { messages: [
    { role: 'system', content: 'You are a concise assistant. Answer in two sentences at most.' },
    u('What is the capital of Australia?'),
    { role: 'assistant', content: 'The capital of Australia is Canberra. It was chosen as a compromise between Sydney and Melbourne.' },
    u("Why didn't they just pick Sydney? It's much bigger, isn't it?"),
  ] } },
  { name: 'code: TypeScript', o200k: 137, cl100k: 132, body: { messages: [u(`Refactor this, please:

\`\`\`ts
export async function fetchUserProfiles(ids: readonly string[], client: HttpClient): Promise<Map<string, UserProfile>> {
  const profiles = new Map<string, UserProfile>();
  for (const id of ids) {
    const response = await client.get(\`/api/v2/users/\${encodeURIComponent(id)}/profile\`, { timeoutMs: 5_000 });
    if (response.status !== 200) {
      throw new Error(\`profile \${id}: HTTP \${response.status}\`);
    }
    profiles.set(id, (await response.json()) as UserProfile);
  }
  return profiles;
}
\`\`\``)] } },
  { name: 'code: Python', o200k: 174, cl100k: 171, body: { messages: [u(`def merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge overlapping closed intervals."""
    if not intervals:
        return []
    intervals.sort(key=lambda iv: iv[0])
    merged = [intervals[0]]
    for start, end in intervals[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged

print(merge_intervals([(1, 3), (2, 6), (8, 10), (15, 18)]))  # [(1, 6), (8, 10), (15, 18)]`)] } },
  { name: 'JSON data', o200k: 113, cl100k: 110, body: { messages: [u(`Summarise: {"orders":[{"id":"ord_8f3a21","total":129.95,"currency":"EUR","items":[{"sku":"KB-204","qty":2},{"sku":"MS-11","qty":1}],"status":"shipped"},{"id":"ord_8f3a22","total":15.5,"currency":"EUR","items":[{"sku":"CB-7","qty":3}],"status":"pending"}],"page":{"next":null,"size":2}}`)] } },
  { name: 'Chinese', o200k: 72, cl100k: 120, body: { messages: [u('请帮我把下面这段话翻译成英文：我们公司下个月将在上海举办一场关于人工智能的研讨会，欢迎各位同事积极报名参加。会议将讨论大模型在客户服务、软件开发和数据分析中的应用，以及如何控制成本和保护用户隐私。')] } },
  { name: 'Japanese', o200k: 106, cl100k: 146, body: { messages: [u('次の文章を要約してください。昨日、東京の新しい図書館が開館しました。館内には約三十万冊の本があり、子ども向けのコーナーやカフェも併設されています。週末には多くの家族連れが訪れ、入口の前には長い行列ができました。館長は「地域の人々が集まる場所にしたい」と話しています。')] } },
  { name: 'Korean', o200k: 49, cl100k: 88, body: { messages: [u('다음 문장을 영어로 번역해 주세요: 오늘 회의에서는 새로운 제품 출시 일정과 마케팅 전략에 대해 논의했습니다. 다음 주까지 각 팀은 예산안을 제출해야 합니다.')] } },
  { name: 'Thai', o200k: 52, cl100k: 131, body: { messages: [u('ช่วยสรุปข้อความนี้ให้หน่อย: วันนี้ทีมของเราได้ประชุมเกี่ยวกับแผนการตลาดสำหรับไตรมาสหน้า และตกลงที่จะเพิ่มงบประมาณสำหรับโฆษณาออนไลน์')] } },
  { name: 'Russian', o200k: 57, cl100k: 103, body: { messages: [u('Пожалуйста, кратко перескажи этот текст: вчера в городе открылась новая библиотека. В ней более трёхсот тысяч книг, детский зал и небольшое кафе. В выходные туда пришло очень много людей.')] } },
  { name: 'German and French', o200k: 47, cl100k: 56, body: { messages: [u('Können Sie mir bitte erklären, warum die Straßenbahn heute Verspätung hat? Et pourriez-vous aussi me dire à quelle heure part le prochain train pour Genève, s’il vous plaît ?')] } },
  { name: 'Arabic', o200k: 38, cl100k: 83, body: { messages: [u('من فضلك لخص هذا النص: افتتحت مكتبة جديدة في المدينة أمس، وتضم أكثر من ثلاثمائة ألف كتاب وقاعة للأطفال.')] } },
  { name: 'mixed English, Chinese, code', o200k: 68, cl100k: 75, body: { messages: [
    { role: 'system', content: 'Answer in the language of the question.' },
    u('这个函数为什么会报错？`const total = items.reduce((sum, item) => sum + item.price * item.qty);` The error says: TypeError: Reduce of empty array with no initial value. 我应该怎么修改？'),
  ] } },
  { name: 'emoji', o200k: 34, cl100k: 44, body: { messages: [u('Rate these 🍕🍔🌮🍣🍜 from best to worst 😄👍 and explain why 🤔✨🎉')] } },
  { name: 'identifiers and hashes', o200k: 133, cl100k: 135, body: { messages: [u('Commit 3f9a2b7c1e04d5a8b6c2f1e0d9a8b7c6e5f4a3b2 broke build #48213; the request id was req-v1-9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f and the blob aGVsbG8gd29ybGQsIHRoaXMgaXMgYmFzZTY0IGVuY29kZWQgdGV4dA==')] } },
  { name: 'numbers', o200k: 102, cl100k: 102, body: { messages: [u('Quarter,Revenue,Cost,Margin\nQ1 2025,1204567.25,987654.10,18.01%\nQ2 2025,1356789.00,1012345.67,25.39%\nQ3 2025,1498123.45,1100234.56,26.56%\nQ4 2025,1623456.78,1187654.32,26.84%')] } },
  { name: 'math symbols', o200k: 99, cl100k: 97, body: { messages: [u('Prove that ∑ᵢ xᵢ² ≥ 0 and ∀ε > 0 ∃δ: |x − a| < δ ⇒ |f(x) − f(a)| < ε; show ∫₀^∞ e^(−x²) dx = √π ⁄ 2 and A ⊂ B ⇒ A ∪ B = B, A ∩ B = A ≠ ∅.')] } },
  { name: 'box drawing', o200k: 63, cl100k: 64, body: { messages: [u('┌────────┬───────┐\n│ name   │ count │\n├────────┼───────┤\n│ alpha  │    12 │\n│ beta   │     7 │\n└────────┴───────┘')] } },
  { name: 'Greek and Hebrew', o200k: 39, cl100k: 86, body: { messages: [u('Αυτό είναι ένα ελληνικό κείμενο για δοκιμή του μετρητή. זהו טקסט בעברית לבדיקה של המונה.')] } },
  { name: 'Hindi', o200k: 39, cl100k: 111, body: { messages: [u('कृपया इस अनुच्छेद का सारांश दें: कल शहर में एक नया पुस्तकालय खुला, जिसमें तीन लाख से अधिक पुस्तकें हैं।')] } },
  { name: 'emoji sequences', o200k: 55, cl100k: 73, body: { messages: [u('Family 👨‍👩‍👧‍👦, flags 🇫🇷🇯🇵🇧🇷, skin tones 👋🏽👍🏿 and a rainbow flag 🏳️‍🌈.')] } },
  { name: 'capitals, UUIDs and URLs', o200k: 130, cl100k: 132, body: { messages: [u('URGENT: THE DEPLOYMENT OF SERVICE ORDERS-API FAILED. Request 550e8400-e29b-41d4-a716-446655440000 and 6ba7b810-9dad-11d1-80b4-00c04fd430c8, see https://status.example.com/incidents/2026-11-30?service=orders-api&region=eu-west-1#timeline and QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0MTIzNDU2Nzg5MA==')] } },
  { name: 'long words and random letters', o200k: 149, cl100k: 160, body: { messages: [u('Die Donaudampfschifffahrtsgesellschaft and internationalization; the session id is seddiiqbjyxrogvpipcrivshacwlkgcrnpcvggqynucahymzqcupuhupbwpslmlyupotkejuzlfhmwkvcpaiefwjvwdagcndvbewflrjfofskyvclfhluiaxnrhejakdxekhtialkqgkcjnmqoyzzdgbahgdpaeqaykrjimsoqqddsmkrmkontldfwvlymkusnngonhifrtlfivmxjwjtkxksmtoewpqlvuqnihdfylshera')] } },
  { name: 'with tools and a tool call', o200k: 280, cl100k: 277, body: {
    messages: [
      { role: 'system', content: 'You can look up the weather and book meetings.' },
      u('What is the weather in Paris tomorrow, and book a 30 minute call with Ana at 10:00 if it is sunny.'),
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_a1b2c3', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","date":"2026-12-01"}' } }] },
      { role: 'tool', tool_call_id: 'call_a1b2c3', content: '{"city":"Paris","date":"2026-12-01","forecast":"sunny","high_c":9,"low_c":2}' },
    ],
    tools: [
      { type: 'function', function: { name: 'get_weather', description: 'Get the weather forecast for a city on a date.', parameters: { type: 'object', properties: { city: { type: 'string', description: 'City name' }, date: { type: 'string', description: 'ISO date, YYYY-MM-DD' } }, required: ['city', 'date'] } } },
      { type: 'function', function: { name: 'book_meeting', description: 'Book a meeting in the calendar.', parameters: { type: 'object', properties: { attendee: { type: 'string' }, start: { type: 'string', description: 'ISO date-time' }, minutes: { type: 'integer', minimum: 5, maximum: 240 } }, required: ['attendee', 'start', 'minutes'] } } },
    ],
  } },
];
