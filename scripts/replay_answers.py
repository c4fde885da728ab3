#!/usr/bin/env python3
"""Replays an evaluation run's answers as an OpenAI-compatible chat server.

    python3 scripts/replay_answers.py PORT RESULTS.jsonl[.gz] [MORE ...] [--data DEV.json]

Each prompt is answered with the SQL the results file recorded for the question the prompt's
first user turn ends with ("Question: ..."); a repair round gets the same SQL again. A record
without its question (those kept in scripts/recorded/ hold only their index in the set, the SQL
and whether it was right) takes it from the set's dev.json, given with --data. Point
`quarry eval` at it (QUARRY_LLM_URL=http://127.0.0.1:PORT/v1 QUARRY_ADAPTER=none, --samples 1)
to measure what Quarry does *after* generation (the amendments in src/amend.rs, checks,
validation) on a past run's model output, without a model. A measuring tool, not a test.
"""
import gzip, json, re, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
args = sys.argv[2:]
questions = []
if '--data' in args:
    at = args.index('--data')
    questions = [case['question'] for case in json.load(open(args[at + 1]))]
    del args[at:at + 2]
answers = {}
for path in args:
    for line in (gzip.open if path.endswith('.gz') else open)(path, 'rt'):
        r = json.loads(line)
        if 'question' not in r and 'index' not in r:
            continue  # a summary line
        question = r['question'] if 'question' in r else questions[r['index']]
        answers.setdefault(question.strip(), r.get('predicted') or 'SELECT 1')
misses = 0
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        global misses
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        users = [m['content'] for m in body['messages'] if m['role'] == 'user']
        m = re.search(r'Question: (.*)\s*$', users[0], re.S)
        q = m.group(1).strip() if m else ''
        sql = answers.get(q)
        if sql is None:
            misses += 1; sys.stderr.write(f'no recorded answer for: {q[:80]}\n'); sql = 'SELECT 1'
        out = json.dumps({'choices': [{'message': {'role': 'assistant', 'content': sql + '\n```'}}],
                          'usage': {'prompt_tokens': 1, 'completion_tokens': 1}}).encode()
        self.send_response(200); self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(out))); self.end_headers(); self.wfile.write(out)
ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
