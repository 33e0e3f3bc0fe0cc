package packets

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/mochi-mqtt/server/v2/mempool"
)

// mochiPublishEncode is PublishEncode as mochi v2.7.9 wrote it, the
// reference for fork change 47.
func mochiPublishEncode(pk *Packet, buf *bytes.Buffer) error {
	nb := mempool.GetBuffer()
	defer mempool.PutBuffer(nb)
	nb.Write(encodeString(pk.TopicName))
	if pk.FixedHeader.Qos > 0 {
		if pk.PacketID == 0 {
			return ErrProtocolViolationNoPacketID
		}
		nb.Write(encodeUint16(pk.PacketID))
	}
	if pk.ProtocolVersion == 5 {
		pb := mempool.GetBuffer()
		defer mempool.PutBuffer(pb)
		pk.Properties.Encode(pk.FixedHeader.Type, pk.Mods, pb, nb.Len()+len(pk.Payload))
		nb.Write(pb.Bytes())
	}
	pk.FixedHeader.Remaining = nb.Len() + len(pk.Payload)
	pk.FixedHeader.Encode(buf)
	buf.Write(nb.Bytes())
	buf.Write(pk.Payload)
	return nil
}

var bigPayload = bytes.Repeat([]byte("payload "), 9000)

// randomPublish is a PUBLISH with each of the properties a PUBLISH can
// carry set or not, at random, and now and then a property it cannot
// carry (which neither encoder writes), a large payload or limits in Mods.
func randomPublish(r *rand.Rand) Packet {
	pick := func() bool { return r.Intn(4) == 0 }
	text := func(n int) string {
		b := make([]byte, r.Intn(n))
		for i := range b {
			b[i] = byte('a' + r.Intn(26))
		}
		return string(b)
	}
	pk := Packet{
		FixedHeader:     FixedHeader{Type: Publish, Qos: byte(r.Intn(3)), Retain: pick(), Dup: pick()},
		ProtocolVersion: []byte{3, 4, 5, 5}[r.Intn(4)],
		TopicName:       text(300),
		PacketID:        uint16(r.Intn(3)),
		Payload:         bigPayload[:r.Intn([]int{10, 300, len(bigPayload)}[r.Intn(3)])],
		Mods:            Mods{AllowResponseInfo: pick(), DisallowProblemInfo: pick()},
	}
	if pick() {
		pk.Mods.MaxSize = uint32(r.Intn(400))
	}
	p := &pk.Properties
	if pick() {
		p.PayloadFormat, p.PayloadFormatFlag = byte(r.Intn(2)), true
	}
	if pick() {
		p.MessageExpiryInterval = uint32(r.Intn(2))
	}
	if pick() {
		p.ContentType = text(5)
	}
	if pick() {
		p.ResponseTopic = text(5) + []string{"", "+", "#"}[r.Intn(3)]
	}
	if pick() {
		p.CorrelationData = []byte(text(5))
	}
	if pick() {
		p.SubscriptionIdentifier = []int{r.Intn(2), r.Intn(300)}[:1+r.Intn(2)]
	}
	if pick() {
		p.TopicAlias, p.TopicAliasFlag = uint16(r.Intn(2)), pick()
	}
	if pick() {
		p.User = []UserProperty{{Key: text(4), Val: text(40)}}
	}
	if pick() {
		p.ReasonString, p.SessionExpiryInterval, p.SessionExpiryIntervalFlag = text(4), 3, true
	}
	return pk
}

// TestPublishEncodeAsMochi: fork change 47 encodes every PUBLISH as mochi
// did, byte for byte, and says so when the packet is refused.
func TestPublishEncodeAsMochi(t *testing.T) {
	r := rand.New(rand.NewSource(47))
	empty := 0
	for i := 0; i < 20000; i++ {
		pk := randomPublish(r)
		if pk.ProtocolVersion == 5 && pk.Properties.publishEmpty() {
			empty++
		}
		want, got := new(bytes.Buffer), new(bytes.Buffer)
		ref := pk
		wantErr := mochiPublishEncode(&ref, want)
		gotErr := pk.PublishEncode(got)
		if gotErr != wantErr || !bytes.Equal(got.Bytes(), want.Bytes()) || pk.FixedHeader != ref.FixedHeader {
			t.Fatalf("packet %d %+v:\nencoded % x (%v, %+v)\nmochi   % x (%v, %+v)", i, pk,
				got.Bytes(), gotErr, pk.FixedHeader, want.Bytes(), wantErr, ref.FixedHeader)
		}
	}
	if empty < 1000 {
		t.Fatalf("only %d of the packets took the way without properties", empty)
	}
}
