// console_pipeline: read lines from the console, shout them back.
//
//   $ printf 'hello\nworld\n' | example_console_pipeline
//   HELLO
//   WORLD
//
// console_reader watches stdin through the scheduler's reactor (no thread
// blocked in read()), sends each line on, and says producer_finished at end
// of input; the message travels down the pipeline and every stage ends after
// its input. Typed interactively, it runs until Ctrl-D.
//
// smoke-input: hello\nworld\n
// smoke-expect: HELLO.*WORLD
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/util/console_echoer.hpp>
#include <kamaelia/util/console_reader.hpp>
#include <kamaelia/util/pure_transformer.hpp>

#include <cctype>
#include <string>

using namespace kamaelia;

std::string shout(std::string line) {
    for (auto& c : line) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return line;
}

int main() {
    pipeline(console_reader(),        // lines from stdin, each ending in "\n"
             pure_transformer(shout), // a function applied to every message
             console_echoer())        // written to stdout as they come
        .run();
}
