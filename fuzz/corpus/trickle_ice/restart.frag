a=ice-ufrag:newu
a=ice-pwd:newpasswordnewpassword00
m=audio 9 UDP/TLS/RTP/SAVPF 0
a=mid:0
a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host
