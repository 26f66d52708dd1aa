#include "health/load_scraper.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "test_server.hpp"

namespace ferry::health {

using namespace std::chrono_literals;
using testing::TestServer;
using testing::wait_for;

namespace {

// Fast settings for tests: a scrape every 50 ms, no smoothing, so one scrape moves the factor.
LoadAwareConfig fast(uint32_t interval_ms = 50, uint32_t timeout_ms = 40) {
    LoadAwareConfig c;
    c.enabled = true;
    c.interval_ms = interval_ms;
    c.timeout_ms = timeout_ms;
    c.smoothing = 1.0;
    return c;
}

LoadTargetKey key(Endpoint backend, LoadAwareConfig settings = fast()) {
    return LoadTargetKey{backend, std::move(settings)};
}

std::string response(const std::string& body, const std::string& status = "200 OK") {
    return "HTTP/1.1 " + status + "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

// What vLLM serves, with two engines (so two series per metric).
std::string vllm_body(int waiting, int running = 3, double kv = 0.2) {
    const std::string e0 = std::to_string(waiting / 2), e1 = std::to_string(waiting - waiting / 2);
    return "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
           "# TYPE vllm:num_requests_waiting gauge\n"
           "vllm:num_requests_waiting{engine=\"0\",model_name=\"llama\"} " + e0 + ".0\n"
           "vllm:num_requests_waiting{engine=\"1\",model_name=\"llama\"} " + e1 + ".0\n"
           "# TYPE vllm:num_requests_running gauge\n"
           "vllm:num_requests_running{engine=\"0\",model_name=\"llama\"} " + std::to_string(running) + ".0\n"
           "# TYPE vllm:kv_cache_usage_perc gauge\n"
           "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"llama\"} " + std::to_string(kv) + "\n"
           "# TYPE vllm:prompt_tokens_total counter\n"
           "vllm:prompt_tokens_total{model_name=\"llama\"} 12345.0\n";
}

// A loopback server answering every request with `raw` (see TestServer's raw mode).
struct MetricsServer {
    TestServer server{TestServer::Mode::raw};
    explicit MetricsServer(const std::string& raw) { set(raw); }
    void set(const std::string& raw) { server.set_raw({raw}); }
    Endpoint endpoint() const { return server.endpoint(); }
};

double factor_of(const LoadScraper& s, const LoadTargetKey& k) {
    auto st = s.status(k);
    return st ? st->factor : -1.0;
}

uint64_t scrapes_of(const LoadScraper& s, const LoadTargetKey& k) {
    auto st = s.status(k);
    return st ? st->scrapes : 0;
}

uint64_t errors_of(const LoadScraper& s, const LoadTargetKey& k) {
    auto st = s.status(k);
    return st ? st->errors : 0;
}

Endpoint ep(const char* addr, uint16_t port) { return Endpoint{*IpAddr::parse(addr), port}; }

BackendConfig backend(const char* addr, uint16_t port) {
    BackendConfig b;
    b.endpoint = ep(addr, port);
    return b;
}

VipConfig vip(const char* name, const char* addr, std::vector<BackendConfig> backends) {
    VipConfig v;
    v.name = name;
    v.endpoint = ep(addr, 80);
    v.backends = std::move(backends);
    return v;
}

}  // namespace

// ---- keys and settings -------------------------------------------------------------------------

TEST(LoadTargetKey, ScrapePortPathAndText) {
    LoadAwareConfig c;
    LoadTargetKey k{ep("10.0.0.5", 8000), c};
    EXPECT_EQ(k.scrape_endpoint().to_string(), "10.0.0.5:8000");
    EXPECT_EQ(k.to_string(), "vllm http://10.0.0.5:8000/metrics");
    k.settings.port = 9400;
    k.settings.path = "/prom";
    k.settings.format = LoadMetricsFormat::triton;
    EXPECT_EQ(k.scrape_endpoint().to_string(), "10.0.0.5:9400");
    EXPECT_EQ(k.to_string(), "triton http://10.0.0.5:9400/prom");
    EXPECT_EQ(k.backend.port, 8000);
}

TEST(LoadTargetKey, OrderingAndFirstScrapeOffset) {
    const LoadTargetKey a = key(ep("10.0.0.5", 8000));
    LoadTargetKey b = a;
    EXPECT_FALSE(a < b);
    EXPECT_FALSE(b < a);
    b.settings.target_queue = 8;
    EXPECT_TRUE(a < b || b < a);
    EXPECT_NE(a, b);

    LoadTargetKey slow = key(ep("10.0.0.5", 8000), fast(1000, 500));
    const uint32_t off = first_scrape_offset_ms(slow);
    EXPECT_LT(off, 1000u);
    EXPECT_EQ(off, first_scrape_offset_ms(slow));
    // Different backends spread over the interval.
    std::vector<uint32_t> offsets;
    for (uint16_t p = 8000; p < 8016; ++p) offsets.push_back(first_scrape_offset_ms(key(ep("10.0.0.5", p),
                                                                                        fast(1000, 500))));
    std::sort(offsets.begin(), offsets.end());
    EXPECT_GT(std::unique(offsets.begin(), offsets.end()) - offsets.begin(), 8);
}

TEST(LoadSettings, FactorConfigAndWantedMetrics) {
    LoadAwareConfig c;
    c.floor = 0.2;
    c.target_queue = 6;
    c.kv_threshold = 0.7;
    c.queue_weight = 0.5;
    c.kv_weight = 0.25;
    c.smoothing = 0.4;
    c.hysteresis = 0.1;
    const balance::LoadFactorConfig f = load_factor_config(c);
    EXPECT_DOUBLE_EQ(f.floor, 0.2);
    EXPECT_DOUBLE_EQ(f.target_queue, 6);
    EXPECT_DOUBLE_EQ(f.kv_threshold, 0.7);
    EXPECT_DOUBLE_EQ(f.queue_weight, 0.5);
    EXPECT_DOUBLE_EQ(f.kv_weight, 0.25);
    EXPECT_DOUBLE_EQ(f.alpha, 0.4);
    EXPECT_DOUBLE_EQ(f.hysteresis, 0.1);
    // The defaults of both agree.
    const balance::LoadFactorConfig d = load_factor_config(LoadAwareConfig{});
    const balance::LoadFactorConfig lf;
    EXPECT_DOUBLE_EQ(d.floor, lf.floor);
    EXPECT_DOUBLE_EQ(d.target_queue, lf.target_queue);
    EXPECT_DOUBLE_EQ(d.kv_threshold, lf.kv_threshold);
    EXPECT_DOUBLE_EQ(d.queue_weight, lf.queue_weight);
    EXPECT_DOUBLE_EQ(d.kv_weight, lf.kv_weight);
    EXPECT_DOUBLE_EQ(d.alpha, lf.alpha);
    EXPECT_DOUBLE_EQ(d.hysteresis, lf.hysteresis);

    c.aggregate = LoadAggregate::max;
    for (const auto& w : wanted_metrics(c)) {
        const bool histogram = w.name.ends_with("_sum") || w.name.ends_with("_count");
        EXPECT_EQ(w.agg, histogram ? balance::Aggregation::sum : balance::Aggregation::max) << w.name;
    }
    c.aggregate = LoadAggregate::sum;
    c.format = LoadMetricsFormat::vllm;
    for (const auto& w : wanted_metrics(c)) {
        const bool kv = w.name.find("cache") != std::string::npos;
        EXPECT_EQ(w.agg, kv ? balance::Aggregation::max : balance::Aggregation::sum) << w.name;
    }
    // Latency histograms: the format's, or the config's own names ("" = none).
    EXPECT_EQ(metric_names(c).ttft, "vllm:time_to_first_token_seconds");
    c.ttft_metric = "my_ttft_seconds";
    c.tpot_metric = "";
    EXPECT_EQ(metric_names(c).ttft, "my_ttft_seconds");
    EXPECT_TRUE(metric_names(c).tpot.empty());
    {
        bool found = false;
        for (const auto& w : wanted_metrics(c)) found = found || w.name == "my_ttft_seconds_count";
        EXPECT_TRUE(found);
    }
    c.ttft_metric.reset();
    c.tpot_metric.reset();
    c.format = LoadMetricsFormat::tgi;
    EXPECT_EQ(wanted_metrics(c).front().name, "tgi_queue_size");
    c.format = LoadMetricsFormat::triton;
    EXPECT_EQ(wanted_metrics(c).front().name, "nv_inference_pending_request_count");
}

// ---- targets -----------------------------------------------------------------------------------

TEST(LoadScraper, TargetsAreTheBackendsOfVipsWithLoadAwareOn) {
    Config cfg;
    VipConfig chat = vip("chat", "10.0.0.100", {backend("10.0.1.1", 8000), backend("10.0.1.2", 8000)});
    chat.load_aware = fast();
    VipConfig embed = vip("embed", "10.0.0.101", {backend("10.0.1.1", 8000), backend("10.0.1.3", 8000)});
    embed.load_aware = fast();  // same settings: 10.0.1.1 is one target
    VipConfig plain = vip("plain", "10.0.0.102", {backend("10.0.1.4", 8000)});
    VipConfig tuned = vip("tuned", "10.0.0.103", {backend("10.0.1.2", 8000)});
    tuned.load_aware = fast();
    tuned.load_aware.target_queue = 16;  // other settings: 10.0.1.2 a second time
    cfg.vips = {chat, embed, plain, tuned};

    LoadScraper s;
    s.set_targets(cfg);
    const auto all = s.all();
    ASSERT_EQ(all.size(), 4u);
    EXPECT_TRUE(s.status(make_load_target_key(chat.backends[0], chat)));
    EXPECT_TRUE(s.status(make_load_target_key(embed.backends[0], embed)));
    EXPECT_TRUE(s.status(make_load_target_key(tuned.backends[0], tuned)));
    EXPECT_TRUE(s.status(ep("10.0.1.3", 8000)));
    EXPECT_FALSE(s.status(ep("10.0.1.4", 8000)));  // load_aware off
    const auto st = s.status(ep("10.0.1.1", 8000));
    ASSERT_TRUE(st);
    EXPECT_EQ(st->factor, 1.0);
    EXPECT_EQ(st->scrapes, 0u);
    EXPECT_TRUE(st->reason.empty());

    // enabled = false removes the VIP's targets; the shared one stays for the other VIP.
    cfg.vips[0].load_aware.enabled = false;
    s.set_targets(cfg);
    EXPECT_EQ(s.all().size(), 3u);
    EXPECT_TRUE(s.status(ep("10.0.1.1", 8000)));
}

TEST(LoadScraper, BadTuningThrowsAndKeepsTheTargets) {
    LoadScraper s;
    s.set_targets({key(ep("10.0.1.1", 8000))});
    LoadAwareConfig bad = fast();
    bad.smoothing = 0;  // LoadFactor refuses it (the loader never produces it)
    EXPECT_THROW(s.set_targets({key(ep("10.0.1.2", 8000), bad)}), std::invalid_argument);
    EXPECT_EQ(s.all().size(), 1u);
    EXPECT_THROW(LoadScraper(LoadScraperOptions{"not-an-ip", 1024, 16}), std::invalid_argument);
}

// ---- scraping ----------------------------------------------------------------------------------

TEST(LoadScraper, FactorDropsWithTheQueueAndRecovers) {
    MetricsServer m(response(vllm_body(0)));
    const LoadTargetKey k = key(m.endpoint());
    LoadAwareConfig relaxed = fast();
    relaxed.target_queue = 12;
    const LoadTargetKey k2 = key(m.endpoint(), relaxed);  // the same server, tuned differently

    LoadScraper s;
    s.set_targets({k, k2});
    s.start();
    ASSERT_TRUE(wait_for([&] { return scrapes_of(s, k) >= 2; })) << s.status(k)->last_error;
    EXPECT_EQ(factor_of(s, k), 1.0);
    EXPECT_TRUE(s.take_events().empty());  // an idle server does not move the factor
    auto st = s.status(k);
    ASSERT_TRUE(st->last_signals.waiting);
    EXPECT_EQ(*st->last_signals.waiting, 0.0);
    EXPECT_EQ(*st->last_signals.running, 3.0);
    EXPECT_DOUBLE_EQ(*st->last_signals.kv_cache, 0.2);

    // 12 waiting (over two engines, summed): 1 / (1 + 12/4) = 0.25; with target 12: 0.5.
    m.set(response(vllm_body(12)));
    ASSERT_TRUE(wait_for([&] { return factor_of(s, k) < 0.3 && factor_of(s, k2) < 0.6; }));
    EXPECT_DOUBLE_EQ(factor_of(s, k), 0.25);
    EXPECT_DOUBLE_EQ(factor_of(s, k2), 0.5);
    EXPECT_DOUBLE_EQ(*s.status(k)->last_signals.waiting, 12.0);
    EXPECT_DOUBLE_EQ(s.status(m.endpoint())->factor, 0.25);  // by endpoint: the lowest factor
    EXPECT_NE(s.status(k)->reason.find("waiting=12"), std::string::npos) << s.status(k)->reason;

    auto events = s.take_events();
    ASSERT_EQ(events.size(), 2u);
    for (const LoadEvent& e : events) {
        EXPECT_EQ(e.backend, m.endpoint());
        EXPECT_DOUBLE_EQ(e.factor, e.target == k ? 0.25 : 0.5);
        EXPECT_NE(e.reason.find("factor"), std::string::npos) << e.reason;
    }

    m.set(response(vllm_body(0)));
    ASSERT_TRUE(wait_for([&] { return factor_of(s, k) == 1.0 && factor_of(s, k2) == 1.0; }));
    events = s.take_events();
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].factor, 1.0);
    EXPECT_EQ(events[1].factor, 1.0);
    EXPECT_EQ(s.status(k)->errors, 0u);
    EXPECT_NE(m.server.last_request().find("GET /metrics HTTP/1.1\r\n"), std::string::npos);
    EXPECT_NE(m.server.last_request().find("Accept-Encoding: identity"), std::string::npos);
}

TEST(LoadScraper, SmoothedFactorMovesGradually) {
    MetricsServer m(response(vllm_body(12)));
    LoadAwareConfig c = fast();
    c.smoothing = 0.5;
    const LoadTargetKey k = key(m.endpoint(), c);
    LoadScraper s;
    s.set_targets({k});
    s.start();
    // Smoothed: 1 -> 0.625 -> 0.4375 -> 0.34375 -> 0.296875 (moved less than the hysteresis: not
    // published) -> 0.2734375, and from there never 0.05 away from the published factor again.
    ASSERT_TRUE(wait_for([&] { return factor_of(s, k) < 0.3; }));
    auto events = s.take_events();
    ASSERT_EQ(events.size(), 4u);
    EXPECT_DOUBLE_EQ(events[0].factor, 0.625);
    EXPECT_DOUBLE_EQ(events[1].factor, 0.4375);
    EXPECT_DOUBLE_EQ(events[2].factor, 0.34375);
    EXPECT_DOUBLE_EQ(events[3].factor, 0.2734375);
    // On the way back up the factor snaps to exactly 1 rather than stalling just below it.
    m.set(response(vllm_body(0)));
    ASSERT_TRUE(wait_for([&] { return factor_of(s, k) == 1.0; }));
    events = s.take_events();
    ASSERT_GE(events.size(), 2u);
    for (std::size_t i = 1; i < events.size(); ++i) EXPECT_GT(events[i].factor, events[i - 1].factor);
    EXPECT_EQ(events.back().factor, 1.0);
}

TEST(LoadScraper, LatencyHistogramsGiveIntervalMeans) {
    // Histogram totals that grow between scrapes: 10 first tokens in 2 s (0.2 s each), then 10 more
    // in 4 s (0.4 s each). TPOT stays absent. No queue gauges: the histograms alone are a good scrape.
    const auto body = [](double sum, double count) {
        return "# TYPE vllm:time_to_first_token_seconds histogram\n"
               "vllm:time_to_first_token_seconds_bucket{le=\"+Inf\"} " + std::to_string(count) + "\n"
               "vllm:time_to_first_token_seconds_sum " + std::to_string(sum) + "\n"
               "vllm:time_to_first_token_seconds_count " + std::to_string(count) + "\n";
    };
    MetricsServer m(response(body(5.0, 100)));
    const LoadTargetKey k = key(m.endpoint());
    LoadScraper s;
    s.set_targets({k});
    s.start();
    ASSERT_TRUE(wait_for([&] { return scrapes_of(s, k) >= 2; }));
    EXPECT_FALSE(s.status(k)->ttft_s);  // a baseline, and no growth: nothing known yet
    EXPECT_EQ(s.status(k)->errors, 0u) << s.status(k)->last_error;
    m.set(response(body(7.0, 110)));
    ASSERT_TRUE(wait_for([&] { return s.status(k)->ttft_s.has_value(); }));
    EXPECT_NEAR(*s.status(k)->ttft_s, 0.2, 1e-9);  // the first mean is taken as is
    m.set(response(body(11.0, 120)));
    ASSERT_TRUE(wait_for([&] { return *s.status(k)->ttft_s > 0.2 + 1e-9; }));
    // EWMA with weight kDefaultLatencySmoothing: 0.3 * 0.4 + 0.7 * 0.2.
    EXPECT_NEAR(*s.status(k)->ttft_s, 0.26, 1e-9);
    EXPECT_FALSE(s.status(k)->tpot_s);
    EXPECT_EQ(s.status(k)->factor, 1.0);  // no load signal: the load factor is untouched
}

TEST(LoadScraper, KvCachePressureAndFormats) {
    // vLLM with a nearly full KV cache: k = 1 - (0.95 - 0.8) / 0.2 = 0.25.
    MetricsServer v(response(vllm_body(0, 3, 0.95)));
    // TGI: two series of the queue; sum 12 or max 8.
    MetricsServer t(response("tgi_queue_size{shard=\"0\"} 4\ntgi_queue_size{shard=\"1\"} 8\n"
                             "tgi_batch_current_size 16\n"));
    // Triton, served chunked.
    const std::string triton = "nv_inference_pending_request_count{model=\"a\",version=\"1\"} 2\n"
                               "nv_inference_pending_request_count{model=\"b\",version=\"1\"} 2\n";
    MetricsServer tr("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + [&] {
        const std::string a = triton.substr(0, 30), b = triton.substr(30);
        char head[32];
        std::snprintf(head, sizeof(head), "%zx;ext=1\r\n", a.size());
        std::string out = head + a + "\r\n";
        std::snprintf(head, sizeof(head), "%zX\r\n", b.size());
        return out + head + b + "\r\n0\r\nX-Trailer: 1\r\n\r\n";
    }());

    LoadAwareConfig tgi_sum = fast();
    tgi_sum.format = LoadMetricsFormat::tgi;
    LoadAwareConfig tgi_max = tgi_sum;
    tgi_max.aggregate = LoadAggregate::max;
    LoadAwareConfig tri = fast();
    tri.format = LoadMetricsFormat::triton;
    const LoadTargetKey kv = key(v.endpoint()), ks = key(t.endpoint(), tgi_sum),
                        km = key(t.endpoint(), tgi_max), kt = key(tr.endpoint(), tri);
    LoadScraper s;
    s.set_targets({kv, ks, km, kt});
    s.start();
    ASSERT_TRUE(wait_for([&] {
        return factor_of(s, kv) < 1 && factor_of(s, ks) < 1 && factor_of(s, km) < 1 && factor_of(s, kt) < 1;
    })) << s.status(kt)->last_error;
    EXPECT_NEAR(factor_of(s, kv), 0.25, 1e-9);
    EXPECT_DOUBLE_EQ(*s.status(ks)->last_signals.waiting, 12.0);
    EXPECT_DOUBLE_EQ(factor_of(s, ks), 0.25);
    EXPECT_DOUBLE_EQ(*s.status(km)->last_signals.waiting, 8.0);
    EXPECT_NEAR(factor_of(s, km), 1.0 / 3.0, 1e-9);
    EXPECT_DOUBLE_EQ(*s.status(kt)->last_signals.waiting, 4.0);
    EXPECT_DOUBLE_EQ(factor_of(s, kt), 0.5);
    EXPECT_FALSE(s.status(kt)->last_signals.kv_cache);
    EXPECT_EQ(s.status(kt)->errors, 0u);
}

TEST(LoadScraper, FailuresKeepTheLastFactorAndCountErrors) {
    MetricsServer m(response(vllm_body(12)));
    const LoadTargetKey k = key(m.endpoint());
    const LoadTargetKey refused = key(testing::loopback(testing::refused_port()));
    LoadScraper s;
    s.set_targets({k, refused});
    s.start();
    ASSERT_TRUE(wait_for([&] { return factor_of(s, k) == 0.25; }));
    ASSERT_TRUE(wait_for([&] { return errors_of(s, refused) >= 2; }));
    EXPECT_EQ(s.status(refused)->last_error, "GET /metrics: connect: refused");
    EXPECT_EQ(factor_of(s, refused), 1.0);
    s.take_events();

    struct Case {  // what the server answers and what the error must say
        std::string raw, error;
    };
    std::string slow_body = vllm_body(0);
    const std::vector<Case> cases = {
        {response("<html><body>Not metrics</body></html>\n"),
         "GET /metrics: no vllm load metric (vllm:num_requests_waiting or vllm:kv_cache_usage_perc or "
         "vllm:gpu_cache_usage_perc or vllm:time_to_first_token_seconds_count or "
         "vllm:time_per_output_token_seconds_count)"},
        {response("oops", "500 Internal Server Error"), "GET /metrics: status 500"},
        {response("", "404 Not Found"), "GET /metrics: status 404"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nvllm:num_requests_waiting 0\n",
         "connection closed after 28 of 100 body bytes"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nvllm:num_requests_waiting 0\n\r\n0\r\n",
         "malformed chunked body"},
        {"SSH-2.0-OpenSSH_9.2\r\n\r\n", "malformed status line \"SSH-2.0-OpenSSH_9.2\""},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", "connection closed in the headers"},
        {"", "connection closed before the status line"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.error);
        m.set(c.raw);
        // Counted after the switch: of two scrapes finishing from now on, the second started after it.
        const uint64_t before = errors_of(s, k);
        ASSERT_TRUE(wait_for([&] { return errors_of(s, k) >= before + 2; })) << s.status(k)->last_error;
        const auto st = s.status(k);
        EXPECT_NE(st->last_error.find(c.error), std::string::npos) << st->last_error;
        EXPECT_GE(st->consecutive_errors, 2u);
        EXPECT_EQ(st->factor, 0.25);
    }
    EXPECT_TRUE(s.take_events().empty());

    // A body that trickles in past the timeout.
    std::vector<std::string> parts = {"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n"};
    for (int i = 0; i < 6; ++i) parts.push_back(std::string(300, '#') + "\n");
    m.server.set_raw(parts);
    const uint64_t before = errors_of(s, k);
    ASSERT_TRUE(wait_for([&] { return errors_of(s, k) >= before + 2; }));
    // Usually "(reading the body)"; "(waiting for the headers)" when the one-thread server is still
    // busy trickling the previous answer.
    EXPECT_TRUE(s.status(k)->last_error.starts_with("GET /metrics: timeout after 40 ms ("))
        << s.status(k)->last_error;
    EXPECT_EQ(factor_of(s, k), 0.25);

    // Back to good answers: the errors stop and the factor follows the server again.
    m.set(response(vllm_body(0)));
    ASSERT_TRUE(wait_for([&] { return factor_of(s, k) == 1.0; }));
    EXPECT_EQ(s.status(k)->consecutive_errors, 0u);
    EXPECT_FALSE(s.status(k)->last_error.empty());  // the last failure stays visible
}

TEST(LoadScraper, SilentServerTimesOut) {
    TestServer silent(TestServer::Mode::silent);
    const LoadTargetKey k = key(silent.endpoint());
    LoadScraper s;
    s.set_targets({k});
    s.start();
    ASSERT_TRUE(wait_for([&] { return errors_of(s, k) >= 2; }));
    EXPECT_EQ(s.status(k)->last_error, "GET /metrics: timeout after 40 ms (waiting for the headers)");
    EXPECT_EQ(factor_of(s, k), 1.0);
}

TEST(LoadScraper, BodiesOverTheLimitAreRefused) {
    LoadScraperOptions opt;
    opt.max_body = 64 * 1024;
    const std::string big = vllm_body(12) + std::string(70 * 1024, '#') + "\n";
    // Announced too large: refused from the headers.
    MetricsServer announced(response(big));
    // Not announced: refused once it grows past the limit.
    MetricsServer unannounced("HTTP/1.1 200 OK\r\n\r\n" + big);
    // Chunked: refused once the decoded body grows past the limit.
    std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (std::size_t off = 0; off < big.size(); off += 8192) {
        const std::string piece = big.substr(off, 8192);
        char head[32];
        std::snprintf(head, sizeof(head), "%zx\r\n", piece.size());
        chunked += head + piece + "\r\n";
    }
    chunked += "0\r\n\r\n";
    MetricsServer chunks(chunked);
    LoadAwareConfig c = fast(100, 90);
    const LoadTargetKey ka = key(announced.endpoint(), c), ku = key(unannounced.endpoint(), c),
                        kc = key(chunks.endpoint(), c);
    LoadScraper s(opt);
    s.set_targets({ka, ku, kc});
    s.start();
    ASSERT_TRUE(wait_for([&] { return errors_of(s, ka) && errors_of(s, ku) && errors_of(s, kc); }));
    EXPECT_NE(s.status(ka)->last_error.find("body of " + std::to_string(big.size()) +
                                            " bytes is larger than the limit of 65536 bytes"),
              std::string::npos)
        << s.status(ka)->last_error;
    EXPECT_NE(s.status(ku)->last_error.find("body larger than the limit of 65536 bytes"), std::string::npos)
        << s.status(ku)->last_error;
    EXPECT_NE(s.status(kc)->last_error.find("body larger than the limit of 65536 bytes"), std::string::npos)
        << s.status(kc)->last_error;
    for (const auto& k : {ka, ku, kc}) EXPECT_EQ(factor_of(s, k), 1.0);

    // Under the limit, the same framings are fine.
    announced.set(response(vllm_body(12)));
    unannounced.set("HTTP/1.1 200 OK\r\n\r\n" + vllm_body(12));
    chunks.set("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + vllm_body(12).substr(0, 16) +
               "\r\n" + [] {
                   const std::string rest = vllm_body(12).substr(16);
                   char head[32];
                   std::snprintf(head, sizeof(head), "%zx\r\n", rest.size());
                   return head + rest + "\r\n0\r\n\r\n";
               }());
    ASSERT_TRUE(wait_for([&] {
        return factor_of(s, ka) == 0.25 && factor_of(s, ku) == 0.25 && factor_of(s, kc) == 0.25;
    })) << s.status(kc)->last_error;
}

TEST(LoadScraper, SetTargetsKeepsTheStateOfUnchangedTargets) {
    MetricsServer a(response(vllm_body(12)));
    MetricsServer b(response(vllm_body(4)));
    const LoadTargetKey ka = key(a.endpoint()), kb = key(b.endpoint());
    LoadScraper s;
    s.set_targets({ka});
    s.start();
    ASSERT_TRUE(wait_for([&] { return factor_of(s, ka) == 0.25; }));
    const uint64_t scrapes = scrapes_of(s, ka);

    // Adding one keeps the other's factor and counters; no events for either.
    s.take_events();
    s.set_targets({kb, ka, ka});
    EXPECT_EQ(s.all().size(), 2u);
    EXPECT_EQ(factor_of(s, ka), 0.25);
    EXPECT_GE(scrapes_of(s, ka), scrapes);
    EXPECT_EQ(factor_of(s, kb), 1.0);
    ASSERT_TRUE(wait_for([&] { return factor_of(s, kb) == 0.5; }));
    EXPECT_EQ(factor_of(s, ka), 0.25);

    // Editing a setting makes a new target, which starts at 1.
    LoadAwareConfig edited = fast();
    edited.target_queue = 12;
    const LoadTargetKey ka2 = key(a.endpoint(), edited);
    s.set_targets({ka2, kb});
    EXPECT_FALSE(s.status(ka));
    EXPECT_EQ(factor_of(s, ka2), 1.0);
    EXPECT_EQ(scrapes_of(s, ka2), 0u);
    ASSERT_TRUE(wait_for([&] { return factor_of(s, ka2) == 0.5; }));
    EXPECT_EQ(factor_of(s, kb), 0.5);

    // Removing all of them stops the scrapes.
    s.set_targets(std::vector<LoadTargetKey>{});
    EXPECT_TRUE(s.all().empty());
    EXPECT_FALSE(s.status(a.endpoint()));
}

TEST(LoadScraper, StopIsPromptAndStartResumes) {
    TestServer silent(TestServer::Mode::silent);
    MetricsServer m(response(vllm_body(12)));
    const LoadTargetKey slow = key(silent.endpoint(), fast(1000, 1000));  // first scrape within 1 s
    const LoadTargetKey k = key(m.endpoint());
    LoadScraper s;
    s.set_targets({slow, k});
    s.start();
    s.start();  // idempotent
    EXPECT_TRUE(s.running());
    ASSERT_TRUE(wait_for([&] { return factor_of(s, k) == 0.25; }));
    ASSERT_TRUE(wait_for([&] { return silent.accepted() >= 1; }));  // a scrape hangs on it now
    const auto t0 = std::chrono::steady_clock::now();
    s.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
    EXPECT_FALSE(s.running());
    s.stop();  // idempotent

    const uint64_t scrapes = scrapes_of(s, k);
    m.set(response(vllm_body(0)));
    std::this_thread::sleep_for(150ms);
    EXPECT_EQ(scrapes_of(s, k), scrapes);  // stopped means stopped
    s.start();
    ASSERT_TRUE(wait_for([&] { return factor_of(s, k) == 1.0; }));
}

TEST(LoadScraper, EventQueueIsBounded) {
    MetricsServer m(response(vllm_body(12)));
    const LoadTargetKey k = key(m.endpoint());
    LoadScraperOptions opt;
    opt.max_events = 1;
    LoadScraper s(opt);
    s.set_targets({k});
    s.start();
    ASSERT_TRUE(wait_for([&] { return factor_of(s, k) == 0.25; }));
    m.set(response(vllm_body(4)));
    ASSERT_TRUE(wait_for([&] { return factor_of(s, k) == 0.5; }));
    const auto events = s.take_events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].factor, 0.5);  // the newest is kept
    EXPECT_EQ(s.events_dropped(), 1u);
}

}  // namespace ferry::health
