// Load scraper: the non-blocking HTTP client (Fetcher), the schedule and the load factors. The
// header describes the behaviour.
#include "health/load_scraper.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <string_view>
#include <tuple>

#include "health/net_util.hpp"

namespace ferry::health {

namespace {

using std::chrono::milliseconds;

constexpr std::size_t kMaxHeaders = 64 * 1024;   // status line and headers together
constexpr std::size_t kMaxChunkLine = 1024;      // one chunk-size line, extensions included
constexpr std::size_t kRecvChunk = 64 * 1024;

const char* format_name(LoadMetricsFormat f) {
    switch (f) {
    case LoadMetricsFormat::vllm: return "vllm";
    case LoadMetricsFormat::tgi: return "tgi";
    case LoadMetricsFormat::triton: return "triton";
    }
    return "?";
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

bool icontains(std::string_view hay, std::string_view needle) {
    if (needle.size() > hay.size()) return false;
    for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i)
        if (iequals(hay.substr(i, needle.size()), needle)) return true;
    return false;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

// A decimal Content-Length, or nullopt if it is not one (or absurdly long).
std::optional<uint64_t> parse_length(std::string_view s) {
    if (s.empty() || s.size() > 18) return std::nullopt;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + uint64_t(c - '0');
    }
    return v;
}

std::string request_for(const Endpoint& target, const std::string& path) {
    return net::get_request(target, path,
                            "User-Agent: ferry-load\r\nAccept: text/plain;version=0.0.4, */*;q=0.1\r\n"
                            "Accept-Encoding: identity\r\n");
}

auto tied(const LoadAwareConfig& c) {
    return std::tie(c.enabled, c.format, c.path, c.port, c.interval_ms, c.timeout_ms, c.floor, c.target_queue,
                    c.kv_threshold, c.queue_weight, c.kv_weight, c.smoothing, c.hysteresis, c.aggregate, c.ttft_metric,
                    c.tpot_metric);
}

}  // namespace

// ---- keys and settings -------------------------------------------------------------------------

Endpoint LoadTargetKey::scrape_endpoint() const {
    Endpoint e = backend;
    if (settings.port != 0) e.port = settings.port;
    return e;
}

std::string LoadTargetKey::to_string() const {
    return std::string(format_name(settings.format)) + " http://" + scrape_endpoint().to_string() +
           settings.path;
}

bool operator<(const LoadTargetKey& a, const LoadTargetKey& b) {
    if (a.backend != b.backend) return a.backend < b.backend;
    return tied(a.settings) < tied(b.settings);
}

LoadTargetKey make_load_target_key(const BackendConfig& backend, const VipConfig& vip) {
    LoadTargetKey k;
    k.backend = backend.endpoint;
    k.settings = vip.load_aware;
    k.settings.enabled = true;
    return k;
}

balance::LoadFactorConfig load_factor_config(const LoadAwareConfig& cfg) {
    balance::LoadFactorConfig f;
    f.floor = cfg.floor;
    f.queue_weight = cfg.queue_weight;
    f.target_queue = cfg.target_queue;
    f.kv_weight = cfg.kv_weight;
    f.kv_threshold = cfg.kv_threshold;
    f.alpha = cfg.smoothing;
    f.hysteresis = cfg.hysteresis;
    return f;
}

balance::MetricNames metric_names(LoadMetricsFormat format) {
    switch (format) {
    case LoadMetricsFormat::vllm: return balance::vllm_names();
    case LoadMetricsFormat::tgi: return balance::tgi_names();
    case LoadMetricsFormat::triton: return balance::triton_names();
    }
    return balance::vllm_names();
}

balance::MetricNames metric_names(const LoadAwareConfig& cfg) {
    balance::MetricNames n = metric_names(cfg.format);
    // A name of the operator's own is taken to be in seconds, like vLLM's and TGI's.
    if (cfg.ttft_metric && *cfg.ttft_metric != n.ttft) {
        n.ttft = *cfg.ttft_metric;
        n.seconds_per_unit = 1.0;
    }
    if (cfg.tpot_metric) n.tpot = *cfg.tpot_metric;
    return n;
}

std::vector<balance::WantedMetric> wanted_metrics(const LoadAwareConfig& cfg) {
    const balance::MetricNames names = metric_names(cfg);
    const auto agg =
        cfg.aggregate == LoadAggregate::max ? balance::Aggregation::max : balance::Aggregation::sum;
    std::vector<balance::WantedMetric> w;
    for (const std::string& n : names.waiting) w.push_back({n, agg});
    for (const std::string& n : names.running) w.push_back({n, agg});
    for (const std::string& n : names.kv_cache) w.push_back({n, balance::Aggregation::max});
    // Histogram totals always add up over series: the mean is over every observation.
    for (const std::string* h : {&names.ttft, &names.tpot}) {
        if (h->empty()) continue;
        w.push_back({*h + "_sum", balance::Aggregation::sum});
        w.push_back({*h + "_count", balance::Aggregation::sum});
    }
    return w;
}

uint32_t first_scrape_offset_ms(const LoadTargetKey& key) {
    sched::OffsetHash f;
    f.bytes(key.backend.addr.bytes.data(), key.backend.addr.bytes.size());
    f.value(uint8_t(key.backend.addr.family));
    f.value(key.backend.port);
    f.value(uint8_t(key.settings.format));
    f.bytes(key.settings.path.data(), key.settings.path.size());
    f.value(key.settings.port);
    f.value(key.settings.interval_ms);
    f.value(key.settings.timeout_ms);
    return f.offset_ms(key.settings.interval_ms);
}

// ---- the HTTP client ---------------------------------------------------------------------------

// Runs GETs concurrently on non-blocking sockets, multiplexed with poll(). Owned by the scrape
// thread; only wake() may be called from others.
class LoadScraper::Fetcher {
public:
    // One GET to run: where, what, and how long it may take in all.
    struct Spec {
        Endpoint target;
        std::string path;
        uint32_t timeout_ms = 500;
    };

    // The outcome of one GET: a 200 body, or why there is none.
    struct Result {
        bool ok = false;
        std::string body;   // ok: the decoded body
        std::string error;  // not ok: "connect: refused", "status 500", "timeout after 500 ms (...)", ...
    };

    Fetcher(std::optional<IpAddr> source, std::size_t max_body)
        : source_(source), max_body_(max_body), wake_fd_(net::make_wake_fd()) {}
    ~Fetcher() {
        cancel_all();
        ::close(wake_fd_);
    }
    Fetcher(const Fetcher&) = delete;
    Fetcher& operator=(const Fetcher&) = delete;

    void start(uint64_t id, const Spec& spec);
    std::vector<std::pair<uint64_t, Result>> poll(Clock::time_point until);
    void wake() { net::wake(wake_fd_); }
    void cancel_all() {
        for (Fetch& f : fetches_) f.close();
        fetches_.clear();
        done_.clear();
    }

private:
    // One GET in flight; `buf` has everything received.
    struct Fetch : net::Connection {
        uint64_t id = 0;
        Spec spec;
        std::size_t body_start = std::string::npos;  // set once the headers are complete
        std::optional<uint64_t> content_length;
        bool chunked = false;
        std::size_t chunk_pos = 0;  // chunked: where the next chunk-size line starts in buf
        std::string decoded;        // chunked: the body so far
    };

    void finish(Fetch& f, bool ok, std::string text);
    void fail_errno(Fetch& f, const char* what, int err) {
        finish(f, false, std::string(what) + ": " + net::errno_text(err));
    }
    void advance(Fetch& f, short revents);
    void send_request(Fetch& f);
    void read_response(Fetch& f);
    // Looks at what has arrived; finishes the fetch when the response is complete or broken.
    void examine(Fetch& f, bool eof);
    bool read_headers(Fetch& f, bool eof);
    // chunked: decodes the complete chunks after chunk_pos; true once the last chunk is in.
    // Finishes the fetch itself on a malformed or too large body.
    bool decode_chunks(Fetch& f);

    std::optional<IpAddr> source_;
    std::size_t max_body_;
    int wake_fd_ = -1;
    std::vector<Fetch> fetches_;
    std::vector<std::pair<uint64_t, Result>> done_;
};

void LoadScraper::Fetcher::finish(Fetch& f, bool ok, std::string text) {
    f.close();
    Result r;
    r.ok = ok;
    (ok ? r.body : r.error) = std::move(text);
    done_.emplace_back(f.id, std::move(r));
    // The buffers of a big body are not needed any more.
    std::string().swap(f.buf);
    std::string().swap(f.decoded);
}

void LoadScraper::Fetcher::start(uint64_t id, const Spec& spec) {
    Fetch f;
    f.id = id;
    f.spec = spec;
    f.deadline = Clock::now() + milliseconds(spec.timeout_ms);

    std::string what;
    int err = 0;
    switch (net::start_connect(f, spec.target, source_, what, err)) {
    case net::ConnectStart::connected: {
        fetches_.push_back(std::move(f));
        Fetch& p = fetches_.back();
        p.request = request_for(p.spec.target, p.spec.path);
        p.phase = Fetch::Phase::sending;
        return send_request(p);
    }
    case net::ConnectStart::in_progress: fetches_.push_back(std::move(f)); return;
    case net::ConnectStart::failed: return fail_errno(f, what.c_str(), err);
    }
}

void LoadScraper::Fetcher::send_request(Fetch& f) {
    if (const int err = net::send_pending(f); err != 0) fail_errno(f, "send", err);
}

void LoadScraper::Fetcher::read_response(Fetch& f) {
    // Bounded work per wake-up so one fast sender cannot starve the other fetches.
    for (int round = 0; round < 16 && f.phase == Fetch::Phase::reading; ++round) {
        const ssize_t n = net::recv_some(f, kRecvChunk);
        if (n == -EAGAIN) return;
        if (n < 0) return fail_errno(f, "recv", int(-n));
        examine(f, n == 0);
    }
}

bool LoadScraper::Fetcher::read_headers(Fetch& f, bool eof) {
    const auto end = f.buf.find("\r\n\r\n");
    if (end == std::string::npos) {
        if (f.buf.size() > kMaxHeaders) {
            finish(f, false, "response headers longer than " + std::to_string(kMaxHeaders) + " bytes");
        } else if (eof) {
            const auto nl = f.buf.find('\n');
            finish(f, false, nl == std::string::npos ? "connection closed before the status line"
                                                     : "connection closed in the headers");
        }
        return false;
    }
    if (end > kMaxHeaders) {
        finish(f, false, "response headers longer than " + std::to_string(kMaxHeaders) + " bytes");
        return false;
    }
    const std::string_view head(f.buf.data(), end);
    std::string error;
    const auto status = net::response_status(head, error);
    if (!status) {
        finish(f, false, std::move(error));
        return false;
    }
    if (*status != 200) {
        finish(f, false, "status " + std::to_string(*status));
        return false;
    }
    const auto nl = head.find('\n');
    std::string_view rest = nl == std::string_view::npos ? std::string_view() : head.substr(nl + 1);
    while (!rest.empty()) {
        const auto e = rest.find('\n');
        const std::string_view h = rest.substr(0, e);
        rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 1);
        const auto colon = h.find(':');
        if (colon == std::string_view::npos) continue;
        const std::string_view name = trim(h.substr(0, colon));
        const std::string_view value = trim(h.substr(colon + 1));
        if (iequals(name, "content-length")) {
            const auto v = parse_length(value);
            if (!v || (f.content_length && *f.content_length != *v)) {
                finish(f, false, "malformed Content-Length \"" + net::printable(value, 32) + "\"");
                return false;
            }
            f.content_length = v;
        } else if (iequals(name, "transfer-encoding") && icontains(value, "chunked")) {
            f.chunked = true;
        }
    }
    if (f.chunked) f.content_length.reset();  // chunked wins (RFC 9112 6.3)
    if (f.content_length && *f.content_length > max_body_) {
        finish(f, false, "body of " + std::to_string(*f.content_length) +
                             " bytes is larger than the limit of " + std::to_string(max_body_) + " bytes");
        return false;
    }
    f.body_start = end + 4;
    f.chunk_pos = f.body_start;
    return true;
}

bool LoadScraper::Fetcher::decode_chunks(Fetch& f) {
    for (;;) {
        const auto eol = f.buf.find("\r\n", f.chunk_pos);
        if (eol == std::string::npos) {
            if (f.buf.size() - f.chunk_pos > kMaxChunkLine) finish(f, false, "malformed chunked body");
            return false;
        }
        std::string_view size_text(f.buf.data() + f.chunk_pos, eol - f.chunk_pos);
        size_text = trim(size_text.substr(0, size_text.find(';')));
        uint64_t size = 0;
        bool good = !size_text.empty() && size_text.size() <= 15;
        for (char c : size_text) {
            const char l = lower(c);
            const int d = l >= '0' && l <= '9' ? l - '0' : l >= 'a' && l <= 'f' ? l - 'a' + 10 : -1;
            if (d < 0) good = false;
            size = size * 16 + uint64_t(d < 0 ? 0 : d);
        }
        if (!good) {
            finish(f, false, "malformed chunked body");
            return false;
        }
        if (size == 0) return true;  // the last chunk; trailers are of no interest
        if (f.decoded.size() + size > max_body_) {
            finish(f, false, "body larger than the limit of " + std::to_string(max_body_) + " bytes");
            return false;
        }
        const std::size_t data = eol + 2;
        if (f.buf.size() < data + size + 2) return false;
        if (f.buf.compare(data + size, 2, "\r\n") != 0) {
            finish(f, false, "malformed chunked body");
            return false;
        }
        f.decoded.append(f.buf, data, size);
        f.chunk_pos = data + size + 2;
    }
}

void LoadScraper::Fetcher::examine(Fetch& f, bool eof) {
    if (f.body_start == std::string::npos && !read_headers(f, eof)) return;
    if (f.chunked) {
        if (decode_chunks(f)) return finish(f, true, std::move(f.decoded));
        if (f.phase == Fetch::Phase::done) return;
        if (eof) return finish(f, false, "connection closed in the middle of the chunked body");
        // Undecoded framing cannot grow past a chunk of at most max_body plus its lines.
        if (f.buf.size() - f.chunk_pos > max_body_ + kMaxChunkLine + 4)
            return finish(f, false, "malformed chunked body");
        return;
    }
    const std::size_t have = f.buf.size() - f.body_start;
    if (f.content_length) {
        if (have >= *f.content_length) {
            f.buf.resize(f.body_start + std::size_t(*f.content_length));
            return finish(f, true, f.buf.substr(f.body_start));
        }
        if (eof)
            return finish(f, false, "connection closed after " + std::to_string(have) + " of " +
                                        std::to_string(*f.content_length) + " body bytes");
        return;
    }
    if (have > max_body_)
        return finish(f, false, "body larger than the limit of " + std::to_string(max_body_) + " bytes");
    if (eof) return finish(f, true, f.buf.substr(f.body_start));
}

void LoadScraper::Fetcher::advance(Fetch& f, short revents) {
    switch (f.phase) {
    case Fetch::Phase::connecting: {
        if (const int err = net::connect_error(f.fd); err != 0) return fail_errno(f, "connect", err);
        if (!(revents & POLLOUT)) return finish(f, false, "connection closed while connecting");
        f.request = request_for(f.spec.target, f.spec.path);
        f.phase = Fetch::Phase::sending;
        return send_request(f);
    }
    case Fetch::Phase::sending: return send_request(f);
    case Fetch::Phase::reading: return read_response(f);
    case Fetch::Phase::done: return;
    }
}

auto LoadScraper::Fetcher::poll(Clock::time_point until) -> std::vector<std::pair<uint64_t, Result>> {
    net::poll_connections(wake_fd_, fetches_, until, !done_.empty(),
                          [this](Fetch& f, short revents) { advance(f, revents); });

    const auto after = Clock::now();
    for (Fetch& f : fetches_) {
        if (f.phase == Fetch::Phase::done || after < f.deadline) continue;
        const char* where = f.phase == Fetch::Phase::connecting ? "connecting"
                            : f.body_start == std::string::npos ? "waiting for the headers"
                                                                 : "reading the body";
        finish(f, false, "timeout after " + std::to_string(f.spec.timeout_ms) + " ms (" + where + ")");
    }
    std::erase_if(fetches_, [](const Fetch& f) { return f.phase == Fetch::Phase::done; });
    return std::exchange(done_, {});
}

// ---- the scraper -------------------------------------------------------------------------------

namespace {

std::optional<IpAddr> source_of(const std::string& text) {
    if (text.empty()) return std::nullopt;
    auto a = IpAddr::parse(text);
    if (!a) throw std::invalid_argument("load scrape source address \"" + text + "\" is not an IP address");
    return a;
}

// The names of a format's queue and KV metrics, for a message: "a or b or c".
std::string names_text(const balance::MetricNames& names) {
    std::string out;
    for (const auto* list : {&names.waiting, &names.kv_cache})
        for (const std::string& n : *list) out += (out.empty() ? "" : " or ") + n;
    for (const std::string* h : {&names.ttft, &names.tpot})
        if (!h->empty()) out += (out.empty() ? "" : " or ") + *h + "_count";
    return out;
}

// The signals in a body, or why there are none.
struct Scraped {
    std::optional<balance::LoadSignals> signals;
    std::string error;
};

Scraped read_signals(const std::string& body, const LoadAwareConfig& cfg, std::size_t max_body) {
    Scraped s;
    std::map<std::string, double> parsed;
    const balance::ParseResult pr = balance::parse_prometheus(body, wanted_metrics(cfg), parsed, max_body);
    if (!pr.ok) {
        s.error = pr.first_error.empty() ? "body refused" : pr.first_error;
        return s;
    }
    const balance::MetricNames names = metric_names(cfg);
    balance::LoadSignals sig = balance::extract_signals(parsed, names);
    if (!sig.waiting && !sig.kv_cache && !sig.ttft_count && !sig.tpot_count) {
        s.error = "no " + std::string(format_name(cfg.format)) + " load metric (" + names_text(names) +
                  ") in " + std::to_string(pr.lines) + " lines, " + std::to_string(pr.samples) + " samples";
        if (pr.errors > 0)
            s.error +=
                ", " + std::to_string(pr.errors) + " malformed (" + net::printable(pr.first_error, 80) + ")";
        return s;
    }
    s.signals = sig;
    return s;
}

}  // namespace

LoadScraper::LoadScraper(Options options)
    : options_(std::move(options)),
      fetcher_(std::make_unique<Fetcher>(source_of(options_.source_address), options_.max_body)) {}

LoadScraper::~LoadScraper() { stop(); }

void LoadScraper::set_targets(const Config& cfg) {
    std::vector<LoadTargetKey> keys;
    for (const VipConfig& vip : cfg.vips) {
        if (!vip.load_aware.enabled && !vip.latency_aware.scrapes()) continue;
        for (const BackendConfig& b : vip.backends) keys.push_back(make_load_target_key(b, vip));
    }
    set_targets(std::move(keys));
}

void LoadScraper::set_targets(std::vector<LoadTargetKey> keys) {
    for (LoadTargetKey& k : keys) k.settings.enabled = true;
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    // Check every key's tuning before touching anything: LoadFactor throws on a bad one.
    std::vector<balance::LoadFactor> factors;
    factors.reserve(keys.size());
    for (const LoadTargetKey& k : keys) factors.emplace_back(load_factor_config(k.settings));

    const auto now = Clock::now();
    {
        std::lock_guard lock(mu_);
        std::map<LoadTargetKey, Target> next;
        for (std::size_t i = 0; i < keys.size(); ++i) {
            if (auto it = targets_.find(keys[i]); it != targets_.end()) {
                next.insert(targets_.extract(it));
                continue;
            }
            Target t;
            t.id = next_id_++;
            t.factor = factors[i];
            t.next_due = now + milliseconds(first_scrape_offset_ms(keys[i]));
            next.emplace(std::move(keys[i]), std::move(t));
        }
        targets_ = std::move(next);
        by_id_.clear();
        for (const auto& [key, t] : targets_) by_id_.emplace(t.id, key);
    }
    fetcher_->wake();  // new targets may be due before the thread meant to wake
}

void LoadScraper::start() {
    if (thread_.joinable()) return;
    stop_.store(false, std::memory_order_release);
    thread_ = std::thread([this] { run(); });
}

void LoadScraper::stop() {
    if (!thread_.joinable()) return;
    stop_.store(true, std::memory_order_release);
    fetcher_->wake();
    thread_.join();
    // The thread is gone: the Fetcher is ours now. Drop what was in flight so a later start()
    // scrapes those targets afresh.
    fetcher_->cancel_all();
    std::lock_guard lock(mu_);
    for (auto& [key, t] : targets_) t.in_flight = false;
}

void LoadScraper::run() {
    while (!stop_.load(std::memory_order_acquire)) {
        try {
            loop_once();
        } catch (...) {
            // Nothing may escape the thread (bad_alloc is the likely one). Forget the scrapes in
            // flight so no target stays marked busy, then back off so a lasting error does not spin.
            try {
                fetcher_->cancel_all();
                std::lock_guard lock(mu_);
                for (auto& [key, t] : targets_) t.in_flight = false;
            } catch (...) {
            }
            std::this_thread::sleep_for(milliseconds(50));
        }
    }
}

void LoadScraper::loop_once() {
    std::vector<std::pair<uint64_t, Fetcher::Spec>> due;
    const auto now = Clock::now();
    auto wake_at = now + std::chrono::hours(1);  // set_targets() and stop() wake the thread sooner
    {
        std::lock_guard lock(mu_);
        for (auto& [key, t] : targets_) {
            if (t.in_flight) continue;
            if (t.next_due <= now) {
                const LoadAwareConfig& c = key.settings;
                due.emplace_back(t.id, Fetcher::Spec{key.scrape_endpoint(), c.path, c.timeout_ms});
                t.in_flight = true;
                // Keep the phase; if the thread fell behind by a whole interval, skip ahead.
                sched::advance_due(t.next_due, key.settings.interval_ms, now);
            } else {
                wake_at = std::min(wake_at, t.next_due);
            }
        }
    }
    for (const auto& [id, spec] : due) fetcher_->start(id, spec);

    auto results = fetcher_->poll(wake_at);
    if (results.empty()) return;

    // Parse outside the lock: a big body takes a while, and status() should not wait for it.
    std::vector<std::pair<uint64_t, Scraped>> scraped;
    scraped.reserve(results.size());
    for (auto& [id, r] : results) {
        std::optional<LoadAwareConfig> settings;
        {
            std::lock_guard lock(mu_);
            if (auto k = by_id_.find(id); k != by_id_.end()) settings = k->second.settings;
        }
        if (!settings) continue;  // target removed while its scrape ran
        const std::string what = "GET " + settings->path + ": ";
        Scraped s;
        if (!r.ok)
            s.error = r.error;
        else
            s = read_signals(r.body, *settings, options_.max_body);
        if (!s.signals) s.error = what + s.error;
        scraped.emplace_back(id, std::move(s));
    }

    std::lock_guard lock(mu_);
    for (auto& [id, s] : scraped) {
        auto k = by_id_.find(id);
        if (k == by_id_.end()) continue;
        auto it = targets_.find(k->second);
        if (it == targets_.end()) continue;
        Target& t = it->second;
        t.in_flight = false;
        ++t.counters.scrapes;
        if (!s.signals) {
            ++t.counters.errors;
            ++t.counters.consecutive_errors;
            t.counters.last_error = std::move(s.error);
            continue;
        }
        t.counters.consecutive_errors = 0;
        t.counters.last_signals = *s.signals;
        const balance::LoadSignals& sig = *s.signals;
        if (sig.ttft_sum && sig.ttft_count) t.ttft.update_totals(*sig.ttft_sum, *sig.ttft_count);
        if (sig.tpot_sum && sig.tpot_count) t.tpot.update_totals(*sig.tpot_sum, *sig.tpot_count);
        t.counters.ttft_s = t.ttft.value();
        t.counters.tpot_s = t.tpot.value();
        const bool changed = t.factor.update(*s.signals);
        t.counters.reason = t.factor.reason();
        if (changed)
            push_event(LoadEvent{it->first.backend, t.factor.published(), t.counters.reason, it->first});
    }
}

void LoadScraper::push_event(LoadEvent event) {
    sched::push_bounded(events_, std::move(event), options_.max_events, events_dropped_);
}

std::vector<LoadEvent> LoadScraper::take_events() {
    std::lock_guard lock(mu_);
    return sched::take_all(events_);
}

uint64_t LoadScraper::events_dropped() const {
    std::lock_guard lock(mu_);
    return events_dropped_;
}

namespace {

LoadStatus status_of(const balance::LoadFactor& factor, const LoadStatus& counters) {
    LoadStatus s = counters;
    s.factor = factor.published();
    return s;
}

}  // namespace

std::optional<LoadStatus> LoadScraper::status(const LoadTargetKey& key) const {
    LoadTargetKey k = key;
    k.settings.enabled = true;
    std::lock_guard lock(mu_);
    auto it = targets_.find(k);
    if (it == targets_.end()) return std::nullopt;
    return status_of(it->second.factor, it->second.counters);
}

std::optional<LoadStatus> LoadScraper::status(const Endpoint& backend) const {
    std::lock_guard lock(mu_);
    std::optional<LoadStatus> best;
    for (const auto& [key, t] : targets_) {
        if (key.backend != backend) continue;
        if (!best || t.factor.published() < best->factor) best = status_of(t.factor, t.counters);
    }
    return best;
}

std::vector<std::pair<LoadTargetKey, LoadStatus>> LoadScraper::all() const {
    std::lock_guard lock(mu_);
    std::vector<std::pair<LoadTargetKey, LoadStatus>> out;
    out.reserve(targets_.size());
    for (const auto& [key, t] : targets_) out.emplace_back(key, status_of(t.factor, t.counters));
    return out;
}

}  // namespace ferry::health
