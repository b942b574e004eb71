a=ice-ufrag:rXqv
a=ice-pwd:MMgnuMZq8E6KZCkU1hAtWygD
m=audio 9 UDP/TLS/RTP/SAVPF 0
a=mid:0
a=end-of-candidates
