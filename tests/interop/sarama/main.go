// Command sarama-check drives a Kafka broker with Go's sarama 1.22.1 (Debian's
// golang-github-shopify-sarama-dev), the client of the tutorial Veritas reproduces, and fails
// (exit status 1) on any wrong result.
//
// Modes:
//
//	consume  the tutorial's consumer: default config (the Kafka 0.8.2 protocol),
//	         ConsumePartition(topic, 0, OffsetNewest); prints "Consumer started" once its
//	         offset is fixed, then the tutorial's line for each of -n messages, which must be
//	         bank-account JSON.
//	produce  the tutorial's producer: default config, a SyncProducer sending -n bank-account
//	         JSON values without a key; every one must land on partition 0 at consecutive
//	         offsets. Prints each value sent, one per line.
//	v2       config.Version = V2_0_0_0: an idempotent SyncProducer (WaitForAll,
//	         Net.MaxOpenRequests = 1) sends -n keyed values, then a ConsumerGroup reads them
//	         all exactly once and commits; the group's committed offset must be the end.
//	codecs   each compression codec, at the oldest protocol sarama allows for it (message
//	         sets v0 for none/gzip/snappy, v1 for lz4, record batches for zstd): -n values
//	         produced and read back in order with ConsumePartition(OffsetOldest).
//	compacted  ClusterAdmin creates a cleanup.policy=compact topic with small segments, -n
//	         rounds of 8 keys are produced; once the broker's log cleaner has run, a consumer
//	         reading from OffsetOldest — with the default config (message sets, down-converted
//	         by the broker) and with V2_0_0_0 (record batches) — must see the latest value of
//	         every key, with gaps in the offsets.
//
// Built offline in GOPATH mode against Debian's /usr/share/gocode (see run.sh).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

// BankAccount is the tutorial's event.
type BankAccount struct {
	FirstName        string
	LastName         string
	CreditCardNumber string
	Amount           float64
}

var (
	brokers  = flag.String("brokers", "127.0.0.1:9092", "bootstrap broker")
	mode     = flag.String("mode", "", "consume | produce | v2 | codecs | compacted")
	topic    = flag.String("topic", "bankaccount", "topic")
	group    = flag.String("group", "sarama-check", "consumer group (v2)")
	n        = flag.Int("n", 10, "messages")
	deadline = flag.Duration("timeout", 60*time.Second, "give up (and fail) after this long")
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

var firstNames = []string{"Jimmie", "Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis"}
var lastNames = []string{"Swaniawski", "Lovelace", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie"}

// generateBankAccount stands in for the tutorial's faker-generated account.
func generateBankAccount(r *rand.Rand) BankAccount {
	cc := make([]byte, 16)
	for i := range cc {
		cc[i] = byte('0' + r.Intn(10))
	}
	return BankAccount{
		FirstName:        firstNames[r.Intn(len(firstNames))],
		LastName:         lastNames[r.Intn(len(lastNames))],
		CreditCardNumber: string(cc),
		Amount:           float64(r.Intn(100000)) / 100,
	}
}

func parseAccount(value []byte) BankAccount {
	var b BankAccount
	if err := json.Unmarshal(value, &b); err != nil {
		fail("message %q is not a bank account: %v", value, err)
	}
	if b.FirstName == "" || len(b.CreditCardNumber) != 16 {
		fail("message %q lost fields", value)
	}
	return b
}

func main() {
	flag.Parse()
	time.AfterFunc(*deadline, func() { fail("%s: timed out after %s", *mode, *deadline) })
	switch *mode {
	case "consume":
		tutorialConsume()
	case "produce":
		tutorialProduce()
	case "v2":
		v2()
	case "codecs":
		codecs()
	case "compacted":
		compacted()
	default:
		fail("unknown -mode %q", *mode)
	}
}

// tutorialConsume is the tutorial's consumer (connectConsumer + ConsumePartition + handleMessage).
func tutorialConsume() {
	config := sarama.NewConfig()
	config.Consumer.Return.Errors = true
	config.Consumer.Offsets.Initial = sarama.OffsetNewest
	worker, err := sarama.NewConsumer([]string{*brokers}, config)
	if err != nil {
		fail("NewConsumer: %v", err)
	}
	consumer, err := worker.ConsumePartition(*topic, 0, sarama.OffsetNewest)
	if err != nil {
		fail("ConsumePartition: %v", err)
	}
	fmt.Println("Consumer started ")
	for got := 0; got < *n; {
		select {
		case err := <-consumer.Errors():
			fail("consumer error: %v", err)
		case msg := <-consumer.Messages():
			fmt.Printf("Received message | Topic(%s) | Message(%s) \n", msg.Topic, string(msg.Value))
			parseAccount(msg.Value)
			if msg.Key != nil {
				fail("message at %d has key %q; the producer sent none", msg.Offset, msg.Key)
			}
			got++
		}
	}
	if err := worker.Close(); err != nil {
		fail("Close: %v", err)
	}
}

// tutorialProduce is the tutorial's producer (setupProducer + sendKafkaMessage).
func tutorialProduce() {
	config := sarama.NewConfig()
	config.Producer.Return.Successes = true
	producer, err := sarama.NewSyncProducer([]string{*brokers}, config)
	if err != nil {
		fail("NewSyncProducer: %v", err)
	}
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	last := int64(-1)
	for i := 0; i < *n; i++ {
		data, err := json.Marshal(generateBankAccount(r))
		if err != nil {
			fail("Marshal: %v", err)
		}
		partition, offset, err := producer.SendMessage(&sarama.ProducerMessage{
			Topic: *topic,
			Value: sarama.ByteEncoder(data),
		})
		if err != nil {
			fail("SendMessage %d: %v", i, err)
		}
		if partition != 0 || (last >= 0 && offset != last+1) {
			fail("message %d at partition %d offset %d (previous %d)", i, partition, offset, last)
		}
		last = offset
		fmt.Println(string(data))
	}
	if err := producer.Close(); err != nil {
		fail("Close: %v", err)
	}
}

type groupHandler struct {
	mu   sync.Mutex
	seen map[string]int
	done chan struct{}
	want int
	once sync.Once
}

func (h *groupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		h.mu.Lock()
		h.seen[string(msg.Value)]++
		total := 0
		for _, k := range h.seen {
			total += k
		}
		h.mu.Unlock()
		s.MarkMessage(msg, "")
		if total >= h.want {
			h.once.Do(func() { close(h.done) })
		}
	}
	return nil
}

// v2 is the newer protocol: idempotent producer, consumer group with commits.
func v2() {
	config := sarama.NewConfig()
	config.Version = sarama.V2_0_0_0
	config.Producer.Return.Successes = true
	config.Producer.Idempotent = true
	config.Producer.RequiredAcks = sarama.WaitForAll
	config.Net.MaxOpenRequests = 1
	config.Consumer.Return.Errors = true
	config.Consumer.Offsets.Initial = sarama.OffsetOldest
	config.Consumer.Offsets.CommitInterval = 100 * time.Millisecond

	producer, err := sarama.NewSyncProducer([]string{*brokers}, config)
	if err != nil {
		fail("NewSyncProducer (idempotent): %v", err)
	}
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	sent := map[string]bool{}
	var end int64
	for i := 0; i < *n; i++ {
		account := generateBankAccount(r)
		data, _ := json.Marshal(account)
		_, offset, err := producer.SendMessage(&sarama.ProducerMessage{
			Topic: *topic,
			Key:   sarama.StringEncoder(account.CreditCardNumber),
			Value: sarama.ByteEncoder(data),
		})
		if err != nil {
			fail("SendMessage %d: %v", i, err)
		}
		sent[string(data)] = true
		if offset+1 > end {
			end = offset + 1
		}
	}
	if err := producer.Close(); err != nil {
		fail("producer Close: %v", err)
	}

	cg, err := sarama.NewConsumerGroup([]string{*brokers}, *group, config)
	if err != nil {
		fail("NewConsumerGroup: %v", err)
	}
	h := &groupHandler{seen: map[string]int{}, done: make(chan struct{}), want: *n}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{*topic}, h); err != nil && ctx.Err() == nil {
				fail("Consume: %v", err)
			}
		}
	}()
	go func() {
		for err := range cg.Errors() {
			fail("consumer group error: %v", err)
		}
	}()
	<-h.done
	cancel()
	wg.Wait()
	if err := cg.Close(); err != nil {
		fail("consumer group Close: %v", err)
	}
	h.mu.Lock()
	for v, k := range h.seen {
		if !sent[v] || k != 1 {
			fail("received %q %d times (sent: %v)", v, k, sent[v])
		}
	}
	if len(h.seen) != len(sent) {
		fail("received %d distinct values of %d", len(h.seen), len(sent))
	}
	h.mu.Unlock()

	// The group's committed position, as a restarted member would resume from it.
	client, err := sarama.NewClient([]string{*brokers}, config)
	if err != nil {
		fail("NewClient: %v", err)
	}
	om, err := sarama.NewOffsetManagerFromClient(*group, client)
	if err != nil {
		fail("NewOffsetManagerFromClient: %v", err)
	}
	pom, err := om.ManagePartition(*topic, 0)
	if err != nil {
		fail("ManagePartition: %v", err)
	}
	if next, _ := pom.NextOffset(); next != end {
		fail("committed offset %d, expected the end %d", next, end)
	}
	pom.Close()
	om.Close()
	client.Close()
	fmt.Printf("v2 ok: %d idempotent messages, consumed once each by group %s, committed %d\n", *n, *group, end)
}

// codecs produces and reads back with every codec.
func codecs() {
	cases := []struct {
		name    string
		codec   sarama.CompressionCodec
		version sarama.KafkaVersion
	}{
		{"none", sarama.CompressionNone, sarama.V0_8_2_0},
		{"gzip", sarama.CompressionGZIP, sarama.V0_8_2_0},
		{"snappy", sarama.CompressionSnappy, sarama.V0_8_2_0},
		{"lz4", sarama.CompressionLZ4, sarama.V0_10_0_0},
		{"zstd", sarama.CompressionZSTD, sarama.V2_1_0_0},
	}
	for _, c := range cases {
		t := fmt.Sprintf("%s-%s", *topic, c.name)
		config := sarama.NewConfig()
		config.Version = c.version
		config.Producer.Return.Successes = true
		config.Producer.Compression = c.codec
		config.Producer.Flush.Messages = *n // whole sets, so compression has something to do
		config.Producer.Flush.Frequency = 50 * time.Millisecond
		producer, err := sarama.NewAsyncProducer([]string{*brokers}, config)
		if err != nil {
			fail("%s: NewAsyncProducer: %v", c.name, err)
		}
		values := make([]string, *n)
		for i := range values {
			values[i] = fmt.Sprintf(`{"codec":"%s","i":%d,"pad":"%s"}`, c.name, i, strings.Repeat("x", i%50))
			producer.Input() <- &sarama.ProducerMessage{Topic: t, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder(values[i])}
		}
		for i := 0; i < *n; i++ {
			select {
			case <-producer.Successes():
			case err := <-producer.Errors():
				fail("%s: produce: %v", c.name, err)
			}
		}
		if err := producer.Close(); err != nil {
			fail("%s: producer Close: %v", c.name, err)
		}

		consumer, err := sarama.NewConsumer([]string{*brokers}, config)
		if err != nil {
			fail("%s: NewConsumer: %v", c.name, err)
		}
		pc, err := consumer.ConsumePartition(t, 0, sarama.OffsetOldest)
		if err != nil {
			fail("%s: ConsumePartition: %v", c.name, err)
		}
		for i := 0; i < *n; i++ {
			select {
			case err := <-pc.Errors():
				fail("%s: consume: %v", c.name, err)
			case msg := <-pc.Messages():
				if msg.Offset != int64(i) || string(msg.Value) != values[i] || string(msg.Key) != fmt.Sprint(i) {
					fail("%s: message %d is offset %d key %q value %q", c.name, i, msg.Offset, msg.Key, msg.Value)
				}
			}
		}
		pc.Close()
		consumer.Close()
		fmt.Printf("codec %s ok (protocol %s): %d messages\n", c.name, c.version, *n)
	}
}

// compacted checks what consumers see of a compacted topic.
func compacted() {
	const keys = 8
	config := sarama.NewConfig()
	config.Version = sarama.V2_0_0_0
	config.Producer.Return.Successes = true
	admin, err := sarama.NewClusterAdmin([]string{*brokers}, config)
	if err != nil {
		fail("NewClusterAdmin: %v", err)
	}
	policy, segment := "compact", "1024"
	err = admin.CreateTopic(*topic, &sarama.TopicDetail{
		NumPartitions:     1,
		ReplicationFactor: 1,
		ConfigEntries:     map[string]*string{"cleanup.policy": &policy, "segment.bytes": &segment},
	}, false)
	if err != nil {
		fail("CreateTopic: %v", err)
	}
	admin.Close()
	producer, err := sarama.NewSyncProducer([]string{*brokers}, config)
	if err != nil {
		fail("NewSyncProducer: %v", err)
	}
	type rec struct {
		offset int64
		value  string
	}
	latest := map[string]rec{}
	send := func(key, value string) int64 {
		_, offset, err := producer.SendMessage(&sarama.ProducerMessage{
			Topic: *topic, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(value),
		})
		if err != nil {
			fail("SendMessage: %v", err)
		}
		return offset
	}
	for r := 0; r < *n; r++ {
		for k := 0; k < keys; k++ {
			key, value := fmt.Sprintf("key-%d", k), fmt.Sprintf("value %d of key %d", r, k)
			latest[key] = rec{send(key, value), value}
		}
	}
	var end int64
	for i := 0; i < 20; i++ { // closes the segments holding the last round
		end = send("filler", fmt.Sprintf("filler %d %s", i, strings.Repeat("x", 40))) + 1
	}
	producer.Close()
	produced := int64(*n*keys + 20)

	readAll := func(version sarama.KafkaVersion) map[string]rec {
		cfg := sarama.NewConfig()
		cfg.Version = version
		cfg.Consumer.Return.Errors = true
		consumer, err := sarama.NewConsumer([]string{*brokers}, cfg)
		if err != nil {
			fail("NewConsumer: %v", err)
		}
		defer consumer.Close()
		pc, err := consumer.ConsumePartition(*topic, 0, sarama.OffsetOldest)
		if err != nil {
			fail("ConsumePartition: %v", err)
		}
		defer pc.Close()
		last, count, gaps := map[string]rec{}, int64(0), false
		prev := int64(-1)
		for prev < end-1 {
			select {
			case err := <-pc.Errors():
				fail("consume (%s): %v", version, err)
			case msg := <-pc.Messages():
				if msg.Offset <= prev {
					fail("offset %d after %d (%s)", msg.Offset, prev, version)
				}
				gaps = gaps || msg.Offset > prev+1
				prev = msg.Offset
				count++
				last[string(msg.Key)] = rec{msg.Offset, string(msg.Value)}
			}
		}
		if count >= produced/2 || !gaps {
			return nil // not compacted yet
		}
		return last
	}
	for _, version := range []sarama.KafkaVersion{sarama.V2_0_0_0, sarama.V0_8_2_0} {
		var last map[string]rec
		for last == nil {
			if last = readAll(version); last == nil {
				time.Sleep(200 * time.Millisecond)
			}
		}
		for key, want := range latest {
			if last[key] != want {
				fail("%s (%s): read %+v, latest was %+v", key, version, last[key], want)
			}
		}
		fmt.Printf("compacted ok (protocol %s): latest value of every key, gaps skipped\n", version)
	}
}
