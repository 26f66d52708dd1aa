// Runs the config tests from the source root, where their data files live.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

namespace {

class SourceRootEnv : public ::testing::Environment {
public:
    void SetUp() override {
        const char* root = std::getenv("FERRY_SOURCE_ROOT");
        ASSERT_NE(root, nullptr) << "run through meson test (FERRY_SOURCE_ROOT unset)";
        ASSERT_EQ(chdir(root), 0);
    }
};

[[maybe_unused]] ::testing::Environment* const kEnv = ::testing::AddGlobalTestEnvironment(new SourceRootEnv);

}  // namespace
