#!/usr/bin/env python3
"""Writes stream64k.sse (to the directory given, default .): a ~63 KB streamed Messages answer in the
API's layout, shaped like bench-load's stream64k (64-byte text deltas, an Anthropic key, an AWS key
id or a GitHub token every ~700 bytes of text, split across deltas). Used by v8-direct.sh."""
import sys
import json
AK="sk-ant-api03-"+"Zx8Kq2Lm5Np9Rt3Vw7Yb1Cd4Fg6Hj0Ks2Mn5Pq8St1Uv4Wx7Yz0Ab3De6Gh9Jk2Lm5No8Pq1Rs4Tu7Vw0Xy3Za6Bc9Dq"+"AA"
AWS="AKIAZ2MQ4JXLS7RT5WHB"; GH="ghp_Q7zK2mX9pL4vT8nB3cY6wH1jF5dG0sRaEuIo"
prose=("To rotate the credentials, first list the keys attached to the role, then create a new one before you delete the old one. "
 "Here is the updated deploy.sh: aws sts get-caller-identity --query Account --output text; kubectl rollout status deploy/api -n prod. "
 "The task-runner reads its settings from config/settings.toml; ask-mode prompts for confirmation. ")
secrets=[f"export ANTHROPIC_API_KEY={AK}\n\n", f"aws_access_key_id = {AWS}\n\n", f"git remote set-url origin https://{GH}@github.com/acme/app.git\n\n"]
text=""; i=0
while len(text) < 22000:
    text += secrets[i%3]; p=""
    while len(p)<560: p+=prose
    text += p[:560]+"\n\n"; i+=1
ev=[]
def e(name,obj): ev.append(f"event: {name}\ndata: {json.dumps(obj,separators=(',',':'))}\n\n")
e("message_start",{"type":"message_start","message":{"id":"msg_01X","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":None,"stop_sequence":None,"usage":{"input_tokens":20,"output_tokens":1}}})
e("content_block_start",{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})
e("ping",{"type":"ping"})
for k in range(0,len(text),64):
    e("content_block_delta",{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text[k:k+64]}})
e("content_block_stop",{"type":"content_block_stop","index":0})
e("message_delta",{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":None},"usage":{"output_tokens":5000}})
e("message_stop",{"type":"message_stop"})
body="".join(ev)
open((sys.argv[1] if len(sys.argv) > 1 else ".") + "/stream64k.sse","w").write(body)
print(len(body), len(text))
